//go:build linux

package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// errLog collects onErr reports.
type errLog struct {
	mu   sync.Mutex
	errs map[netip.Addr]error
}

// on returns an onErr for a Send to to: it records each error under the
// peer's address.
func (e *errLog) on(to []peers.Peer) func(int, error) {
	return func(i int, err error) { e.add(to[i].Addr(), err) }
}

func (e *errLog) add(a netip.Addr, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.errs == nil {
		e.errs = map[netip.Addr]error{}
	}
	e.errs[a] = err
}

func (e *errLog) get(a netip.Addr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.errs[a]
}

// sendUntil calls Send until it hands want frames to the kernel: l2 reports
// ErrNoMAC until the managed neighbour entries resolve. Bounded to ~3 s.
func sendUntil(t *testing.T, s Sender, m *ptb.Message, to []peers.Peer, want int, el *errLog) {
	t.Helper()
	got := 0
	for i := 0; i < 60; i++ {
		if got = s.Send(m, to, el.on(to)); got >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: Send handed %d frames to the kernel, want %d; errors: %v", s.Name(), got, want, el.errs)
}

// TestTransportsInNamespaces sends a PTB from n1 to n2 and n3 over every
// transport and family, checks the frame each receiver sees, and checks that
// n2's kernel applies it: a UDP socket VIP:80 -> client in n2 learns
// MTU 1400 (and `ip route get` shows the PMTU exception).
func TestTransportsInNamespaces(t *testing.T) {
	l := newLab(t)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]

	var (
		l2 *L2
		bc *Broadcast
		rt *Routed // kernel picks the source; kernel computes the ICMPv6 checksum
		rs *Routed // explicit sources; we compute the ICMPv6 checksum
	)
	const ttl = 7
	in(t, n1.ns, func() error {
		var err error
		if l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Second}); err != nil {
			return err
		}
		if bc, err = NewBroadcast(BroadcastConfig{Uplinks: []string{"eth0"}}); err != nil {
			return err
		}
		if rt, err = NewRouted(RoutedConfig{TTL: ttl}); err != nil {
			return err
		}
		rs, err = NewRouted(RoutedConfig{TTL: ttl, Source4: n1.v4, Source6: n1.v6})
		return err
	})
	t.Cleanup(func() {
		for _, s := range []Sender{l2, bc, rt, rs} {
			if s != nil {
				s.Close()
			}
		}
	})
	sn2, sn3 := sniff(t, n2.ns), sniff(t, n3.ns)

	client := 0
	for _, tc := range []struct {
		name string
		s    Sender
	}{{"l2", l2}, {"broadcast", bc}, {"routed", rt}, {"routed-src", rs}} {
		for _, f := range []uint8{4, 6} {
			t.Run(fmt.Sprintf("%s/v%d", tc.name, f), func(t *testing.T) {
				client++
				var c netip.Addr
				if f == 4 {
					c = netip.AddrFrom4([4]byte{198, 51, 100, byte(client)})
				} else {
					c = netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%d", client))
				}
				port := 4000 + client
				sock := openPMTUSocket(t, n2.ns, f, c, port)
				if before := sock.mtu(t); before != 9000 {
					t.Fatalf("path MTU before relay = %d, want 9000", before)
				}
				m := ptbMessage(f, c, uint16(port), 1400)
				to := []peers.Peer{n2.peer(f), n3.peer(f)}
				want := 2
				if tc.s == bc {
					want = 1
				}
				el := &errLog{}
				sendUntil(t, tc.s, m, to, want, el)

				for _, rx := range []struct {
					n labNode
					s *sniffer
				}{{n2, sn2}, {n3, sn3}} {
					fr := rx.s.next(t, 2*time.Second)
					if fr == nil {
						t.Fatalf("%s received nothing", rx.n.ns)
					}
					switch tc.s {
					case l2:
						checkL2Frame(t, fr, rx.n.mac, n1.mac, m)
					case bc:
						checkL2Frame(t, fr, broadcastMAC, n1.mac, m)
					default:
						checkRoutedFrame(t, fr, n1, rx.n, ttl, m)
					}
				}

				// The kernel's verdict in n2.
				got := sock.waitMTU(t, 1400)
				route := ipOut(t, "-n", n2.ns, fmt.Sprintf("-%d", f), "route", "get", c.String(), "from", m.Dst.String())
				t.Logf("n2: IP_MTU %d; ip route get: %s", got, bytes.TrimSpace([]byte(route)))
				if got != 1400 {
					t.Errorf("n2 did not apply the relayed PTB: socket path MTU %d, want 1400", got)
				}
			})
		}
	}
}

// checkL2Frame: the original packet, byte for byte, from n1's MAC to dst.
func checkL2Frame(t *testing.T, fr []byte, dst, src [6]byte, m *ptb.Message) {
	t.Helper()
	if !bytes.Equal(fr[0:6], dst[:]) {
		t.Errorf("dst MAC %x, want %x", fr[0:6], dst)
	}
	if !bytes.Equal(fr[6:12], src[:]) {
		t.Errorf("src MAC %x, want %x", fr[6:12], src)
	}
	if et := binary.BigEndian.Uint16(fr[12:14]); et != etherTypeFor(m.Family) {
		t.Errorf("EtherType %#x", et)
	}
	if !bytes.Equal(fr[14:], m.Packet) {
		t.Errorf("payload differs from the original packet:\n got %x\nwant %x", fr[14:], m.Packet)
	}
}

// checkRoutedFrame: a new IP header from n1 to the receiver with the
// configured TTL; the ICMPv4 message unchanged, or the ICMPv6 message
// unchanged but for a checksum valid for the new pseudo-header.
func checkRoutedFrame(t *testing.T, fr []byte, from, to labNode, ttl uint8, m *ptb.Message) {
	t.Helper()
	if !bytes.Equal(fr[0:6], to.mac[:]) || !bytes.Equal(fr[6:12], from.mac[:]) {
		t.Errorf("MACs %x -> %x, want %x -> %x", fr[6:12], fr[0:6], from.mac, to.mac)
	}
	ip := fr[14:]
	if m.Family == 4 {
		src, _ := netip.AddrFromSlice(ip[12:16])
		dst, _ := netip.AddrFromSlice(ip[16:20])
		if src != from.v4 || dst != to.v4 {
			t.Errorf("outer %s -> %s, want %s -> %s", src, dst, from.v4, to.v4)
		}
		if ip[8] != ttl || ip[9] != 1 {
			t.Errorf("TTL %d proto %d, want %d 1", ip[8], ip[9], ttl)
		}
		if ptbtest.Checksum(ip[:20], 0) != 0 {
			t.Error("IPv4 header checksum invalid")
		}
		if tot := int(binary.BigEndian.Uint16(ip[2:4])); tot != 20+len(m.ICMP) || !bytes.Equal(ip[20:tot], m.ICMP) {
			t.Errorf("ICMP body changed:\n got %x\nwant %x", ip[20:], m.ICMP)
		}
		return
	}
	src, _ := netip.AddrFromSlice(ip[8:24])
	dst, _ := netip.AddrFromSlice(ip[24:40])
	if src != from.v6 || dst != to.v6 {
		t.Errorf("outer %s -> %s, want %s -> %s", src, dst, from.v6, to.v6)
	}
	if ip[7] != ttl || ip[6] != 58 {
		t.Errorf("hop limit %d next header %d, want %d 58", ip[7], ip[6], ttl)
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	body := ip[40 : 40+plen]
	if c := ptbtest.ICMPv6Checksum(src, dst, body); c != 0 {
		t.Errorf("ICMPv6 checksum invalid for %s -> %s", src, dst)
	}
	if !bytes.Equal(body[:2], m.ICMP[:2]) || !bytes.Equal(body[4:], m.ICMP[4:]) {
		t.Errorf("ICMPv6 message changed beyond its checksum:\n got %x\nwant %x", body, m.ICMP)
	}
}

// TestL2UnreachablePeers: a peer that does not exist gets ErrNoMAC, a peer
// behind a gateway gets ErrNotOnLink, and the real peers still receive.
// PeerMACs lists only peers, never the other neighbours.
func TestL2UnreachablePeers(t *testing.T) {
	l := newLab(t)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]
	var l2 *L2
	in(t, n1.ns, func() error {
		var err error
		l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Second})
		return err
	})
	t.Cleanup(func() { l2.Close() })
	sn2, sn3 := sniff(t, n2.ns), sniff(t, n3.ns)

	for _, f := range []uint8{4, 6} {
		t.Run(fmt.Sprintf("v%d", f), func(t *testing.T) {
			ghost := netip.AddrFrom4([4]byte{10, 77, 0, 9})
			remote := netip.AddrFrom4([4]byte{10, 88, 0, 1})
			if f == 6 {
				ghost, remote = netip.MustParseAddr("fd77::9"), netip.MustParseAddr("fd88::1")
			}
			to := []peers.Peer{n2.peer(f), n3.peer(f), peers.PeerAt(ghost), peers.PeerAt(remote)}
			m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.200", 6: "2001:db8:1::200"}[f]), 5000, 1400)
			el := &errLog{}
			sendUntil(t, l2, m, to, 2, el)
			for _, s := range []*sniffer{sn2, sn3} {
				if fr := s.next(t, 2*time.Second); fr == nil {
					t.Fatal("a reachable peer received nothing")
				}
			}
			el = &errLog{}
			if n := l2.Send(m, to, el.on(to)); n != 2 {
				t.Fatalf("Send = %d, want 2", n)
			}
			if err := el.get(ghost); !errors.Is(err, ErrNoMAC) {
				t.Errorf("missing peer %s: err %v, want %v", ghost, err, ErrNoMAC)
			}
			if err := el.get(remote); !errors.Is(err, ErrNotOnLink) {
				t.Errorf("routed peer %s: err %v, want %v", remote, err, ErrNotOnLink)
			} else {
				t.Logf("reported: %v", err)
			}
			for _, p := range to[:2] {
				if err := el.get(p.Addr()); err != nil {
					t.Errorf("reachable peer %s reported: %v", p.Addr(), err)
				}
			}
			// In a batch, a failure names its message and its peer.
			ms := []Outgoing{{M: m, To: to[:2]}, {M: m, To: to[1:]}}
			var failed []string
			n := l2.SendBatch(ms, func(j, i int, err error) { failed = append(failed, fmt.Sprintf("%d/%s", j, ms[j].To[i].Addr())) })
			if want := []string{"1/" + ghost.String(), "1/" + remote.String()}; n != 3 || ms[0].Sent != 2 || ms[1].Sent != 1 || !slices.Equal(failed, want) {
				t.Errorf("SendBatch = %d, Sent %d and %d, failed %v; want 3, 2 and 1, %v", n, ms[0].Sent, ms[1].Sent, failed, want)
			}
		})
	}
	macs := l2.PeerMACs()
	if len(macs) != 2 || !slices.Contains(macs, n2.mac) || !slices.Contains(macs, n3.mac) {
		t.Errorf("PeerMACs = %x, want exactly n2's and n3's", macs)
	}
	// The managed entries the transport added are visible in the kernel.
	t.Logf("n1 neighbours:\n%s", ipOut(t, "-n", n1.ns, "-d", "neigh", "show", "dev", "eth0"))

	// SetPeers is authoritative: peers that left are forgotten.
	l2.SetPeers([]peers.Peer{n2.peer(4)})
	for i := 0; i < 100 && len(l2.PeerMACs()) != 1; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if macs := l2.PeerMACs(); len(macs) != 1 || macs[0] != n2.mac {
		t.Errorf("after SetPeers(n2): PeerMACs = %x, want [%x]", macs, n2.mac)
	}
	// ... and their managed entries are gone, so the kernel stops probing
	// them; Close removes the rest.
	if m := managedNeighbours(t, n1.ns); !slices.Equal(m, []string{n2.v4.String()}) {
		t.Errorf("after SetPeers(n2): managed entries %q, want only %s", m, n2.v4)
	}
	l2.Close()
	if m := managedNeighbours(t, n1.ns); len(m) != 0 {
		t.Errorf("after Close: managed entries %q remain", m)
	}
}

func managedNeighbours(t *testing.T, ns string) []string {
	var out []string
	for _, line := range strings.Split(ipOut(t, "-n", ns, "-d", "neigh", "show", "dev", "eth0"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && slices.Contains(f, "managed") {
			out = append(out, f[0])
		}
	}
	return out
}

// TestSendDoesNotAllocate: steady state Send, all transports.
func TestSendDoesNotAllocate(t *testing.T) {
	l := newLab(t)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]
	var ss []Sender
	in(t, n1.ns, func() error {
		l2, err := NewL2(L2Config{Uplinks: []string{"eth0"}})
		if err != nil {
			return err
		}
		bc, err := NewBroadcast(BroadcastConfig{Uplinks: []string{"eth0"}})
		if err != nil {
			return err
		}
		rt, err := NewRouted(RoutedConfig{TTL: 1})
		if err != nil {
			return err
		}
		tu, err := NewTunnel(TunnelConfig{Insecure: true})
		if err != nil {
			return err
		}
		ss = []Sender{l2, bc, rt, tu}
		return nil
	})
	t.Cleanup(func() {
		for _, s := range ss {
			s.Close()
		}
	})
	for _, f := range []uint8{4, 6} {
		m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.201", 6: "2001:db8:1::201"}[f]), 5001, 1400)
		to := []peers.Peer{n2.peer(f), n3.peer(f)}
		for _, s := range ss {
			want := 2
			if s.Name() == "broadcast" {
				want = 1
			}
			sendUntil(t, s, m, to, want, &errLog{})
			onErr := func(i int, err error) { t.Errorf("%s: %s: %v", s.Name(), to[i].Addr(), err) }
			if a := testing.AllocsPerRun(200, func() { s.Send(m, to, onErr) }); a != 0 {
				t.Errorf("%s v%d: %v allocations per Send", s.Name(), f, a)
			}
			ms := []Outgoing{{M: m, To: to}, {M: m, To: to[:1]}}
			onErrN := func(j, i int, err error) { t.Errorf("%s: %s: %v", s.Name(), ms[j].To[i].Addr(), err) }
			if a := testing.AllocsPerRun(200, func() { s.SendBatch(ms, onErrN) }); a != 0 {
				t.Errorf("%s v%d: %v allocations per SendBatch", s.Name(), f, a)
			}
		}
	}
}

// TestBroadcastVersusDropUnicastInL2Multicast records a limit of the
// broadcast transport: a receiver with drop_unicast_in_l2_multicast=1
// (RFC 1122 3.3.6 / RFC 4861 hardening, off by default) discards the relayed
// packet, because it carries a unicast IP destination in an L2 broadcast.
func TestBroadcastVersusDropUnicastInL2Multicast(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[0], l.nodes[1]
	in(t, n2.ns, func() error {
		for _, p := range []string{"/proc/sys/net/ipv4/conf/eth0/drop_unicast_in_l2_multicast", "/proc/sys/net/ipv6/conf/eth0/drop_unicast_in_l2_multicast"} {
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	var bc *Broadcast
	in(t, n1.ns, func() error {
		var err error
		bc, err = NewBroadcast(BroadcastConfig{Uplinks: []string{"eth0"}})
		return err
	})
	t.Cleanup(func() { bc.Close() })
	sn2 := sniff(t, n2.ns)
	for _, f := range []uint8{4, 6} {
		c := netip.MustParseAddr(map[uint8]string{4: "198.51.100.99", 6: "2001:db8:1::99"}[f])
		sock := openPMTUSocket(t, n2.ns, f, c, 4099)
		m := ptbMessage(f, c, 4099, 1400)
		if n := bc.Send(m, []peers.Peer{n2.peer(f)}, nil); n != 1 {
			t.Fatalf("Send = %d", n)
		}
		if sn2.next(t, 2*time.Second) == nil {
			t.Fatal("n2 did not receive the broadcast frame")
		}
		time.Sleep(200 * time.Millisecond)
		if got := sock.mtu(t); got != 9000 {
			t.Errorf("v%d: with drop_unicast_in_l2_multicast=1 n2 still applied the PTB (MTU %d)", f, got)
		}
	}
}
