//go:build linux

package transport

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// BenchmarkSend measures Send per transport, family and batch size with 10
// peers: n2, n3 and 8 fake ones that n1 has permanent neighbour entries for
// (their frames are flooded by the bridge and dropped by n2 and n3). The
// receivers' softirq work runs on the same 2 CPUs, so the figures are an
// end-to-end cost on veth, not of the syscall alone.
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 2s ./internal/transport/
func BenchmarkSend(b *testing.B) {
	l := newLab(b)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]
	to := map[uint8][]peers.Peer{4: {n2.peer(4), n3.peer(4)}, 6: {n2.peer(6), n3.peer(6)}}
	for i := 0; i < 8; i++ {
		a4 := netip.AddrFrom4([4]byte{10, 77, 0, byte(100 + i)})
		a6 := netip.MustParseAddr(fmt.Sprintf("fd77::%x", 0x100+i))
		mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
		run(b, "-n", n1.ns, "neigh", "add", a4.String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
		run(b, "-n", n1.ns, "neigh", "add", a6.String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
		to[4] = append(to[4], peers.PeerAt(a4))
		to[6] = append(to[6], peers.PeerAt(a6))
	}

	var (
		l2 *L2
		bc *Broadcast
		rt *Routed
		tu *Tunnel
	)
	in(b, n1.ns, func() error {
		var err error
		if l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}}); err != nil {
			return err
		}
		if bc, err = NewBroadcast(BroadcastConfig{Uplinks: []string{"eth0"}}); err != nil {
			return err
		}
		if rt, err = NewRouted(RoutedConfig{TTL: 1}); err != nil {
			return err
		}
		tu, err = NewTunnel(TunnelConfig{Insecure: true})
		return err
	})
	b.Cleanup(func() { l2.Close(); bc.Close(); rt.Close(); tu.Close() })
	l2.SetPeers(append(append([]peers.Peer(nil), to[4]...), to[6]...))
	for i := 0; i < 150 && len(l2.PeerMACs()) < 10; i++ {
		time.Sleep(20 * time.Millisecond)
	}

	type variant struct {
		name  string
		s     Sender
		batch func(n int) // sets the sendmmsg batch size
	}
	variants := []variant{
		{"l2", l2, func(n int) { setBatch(&l2.sendLoop, n) }},
		{"broadcast", bc, nil},
		{"routed", rt, func(n int) { setBatch(&rt.sendLoop, n) }},
		{"tunnel", tu, func(n int) { setBatch(&tu.sendLoop, n) }},
	}
	for _, v := range variants {
		for _, f := range []uint8{4, 6} {
			sizes := []int{defaultBatch}
			if v.batch != nil {
				sizes = []int{1, defaultBatch}
			}
			for _, size := range sizes {
				b.Run(fmt.Sprintf("%s/v%d/peers=%d/batch=%d", v.name, f, len(to[f]), size), func(b *testing.B) {
					if v.batch != nil {
						v.batch(size)
					}
					m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.250", 6: "2001:db8:1::250"}[f]), 6000, 1400)
					fails := 0
					onErr := func(int, error) { fails++ }
					want := len(to[f])
					if v.s == bc {
						want = 1
					}
					if n := v.s.Send(m, to[f], onErr); n != want {
						b.Fatalf("warm-up Send = %d, want %d (%d errors)", n, want, fails)
					}
					frames := 0
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						frames += v.s.Send(m, to[f], onErr)
					}
					b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
					if fails > 0 {
						b.Errorf("%d send errors", fails)
					}
				})
			}
		}
	}
}

// setBatch gives every socket of l a sendmmsg batch of n messages.
func setBatch(l *sendLoop, n int) {
	for _, s := range l.socks {
		if s != nil {
			s.b = newBatch(s.b.rc, n)
		}
	}
}
