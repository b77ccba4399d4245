//go:build linux

package relay_test

import (
	byteorder "encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// The hostile-datagram suite. Three nodes run go-pmtud with --transport
// tunnel and key A; the router r0 is the attacker: it can forge any source
// address (ip_nonlocal_bind in its namespace) and send to the tunnel port.
// It cannot read the key file. Node n2 is the target: nothing it should not
// inject may reach pmtud0 (its rx counter) or leave its uplink (a capture
// on eth0), and each datagram is counted under its reason, or dropped by
// the kernel filter before the socket (then no counter moves at all).

var allResults = []string{"injected", "not_peer", "bad_header", "unknown_key", "bad_mac", "stale", "replayed",
	"rate_limited_peer", "rate_limited_global", "bad_ptb", "bad_destination", "foreign_inner", "not_ours", "inject_error"}

// ptbAbout is a PTB from the router to dst about a packet dst:80 -> client:port.
func ptbAbout(dst, client string, port int) []byte {
	router := "10.77.0.254"
	if netip.MustParseAddr(dst).Is6() {
		router = "fd77::fe"
	}
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(router), VIP: netip.MustParseAddr(dst),
		Client: netip.MustParseAddr(client), MTU: 1400, Proto: 17, SrcPort: 80, DstPort: uint16(port)})
}

// readdress4 changes an IPv4 PTB's outer destination (redoing the header
// checksum; the ICMP checksum does not cover it): a PTB to dst about
// somebody else's packet.
func readdress4(p []byte, dst string) []byte {
	a := netip.MustParseAddr(dst).As4()
	copy(p[16:20], a[:])
	p[10], p[11] = 0, 0
	sum := uint32(0)
	for i := 0; i < 20; i += 2 {
		sum += uint32(byteorder.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	byteorder.BigEndian.PutUint16(p[10:], ^uint16(sum))
	return p
}

func TestTunnelHostileDatagrams(t *testing.T) {
	s := testnet.NewSegment(t, "pth", 3, 1)
	ds, _ := startTunnel(t, s, []string{keyA})
	const target = 1
	tns, tgt := s.Nodes[target], ds[target]
	v4, v6 := netip.MustParseAddr(s.V4[target]), netip.MustParseAddr(s.V6[target])
	peer4, peer6 := netip.MustParseAddr(s.V4[2]), netip.MustParseAddr(s.V6[2]) // forged: node 3's addresses
	attacker := newSpoofer(t, s.Routers[0])
	sniff := newPTBSniffer(t, tns)
	waitFor(t, "the tunnel filter to know the peers", func() bool { return filterReady(t, tns) })

	now := time.Now()
	epoch := uint64(0xfeed)
	valid := func(c uint64, pkt []byte) []byte { return sealed(t, keyA, pkt, now, epoch, c) }
	captured := valid(1, ptbAbout(testnet.VIP4, "203.0.113.1", 42001)) // as if sniffed off the wire
	wrongID := sealed(t, keyX, ptbAbout(testnet.VIP4, "203.0.113.2", 42002), now, epoch, 2)
	idA := ring(t, keyA).SignerID()
	copy(wrongID[8:12], idA[:]) // claim key A's id
	cases := []struct {
		name     string
		src, dst netip.Addr
		d        []byte
		want     string // result counted; "" means dropped by the kernel filter
	}{
		{"non-peer source", netip.MustParseAddr(s.R4[0]), v4, valid(3, ptbAbout(testnet.VIP4, "203.0.113.3", 42003)), ""},
		{"non-peer source v6", netip.MustParseAddr(s.R6[0]), v6, valid(4, ptbAbout(testnet.VIP6, "2001:db8:2::4", 42004)), ""},
		{"forged peer, unsigned", peer4, v4, sealed(t, "", ptbAbout(testnet.VIP4, "203.0.113.5", 42005), now, epoch, 5), "unknown_key"},
		{"forged peer, unsigned v6", peer6, v6, sealed(t, "", ptbAbout(testnet.VIP6, "2001:db8:2::6", 42006), now, epoch, 6), "unknown_key"},
		{"forged peer, wrong key", peer4, v4, sealed(t, keyX, ptbAbout(testnet.VIP4, "203.0.113.7", 42007), now, epoch, 7), "unknown_key"},
		{"forged peer, wrong key under key A's id", peer4, v4, wrongID, "bad_mac"},
		{"captured datagram, first time", peer4, v4, captured, "injected"},
		{"captured datagram, replayed", peer4, v4, captured, "replayed"},
		{"old timestamp", peer4, v4, sealed(t, keyA, ptbAbout(testnet.VIP4, "203.0.113.9", 42009), now.Add(-time.Minute), epoch, 9), "stale"},
		{"non-local outer destination", peer4, v4, valid(10, ptbAbout("198.51.100.99", "203.0.113.10", 42010)), "not_ours"},
		{"non-local outer destination v6", peer6, v6, valid(11, ptbAbout("2001:db8:100::99", "2001:db8:2::11", 42011)), "not_ours"},
		{"foreign quoted source", peer4, v4, valid(12, readdress4(ptbAbout("198.51.100.99", "203.0.113.12", 42012), testnet.VIP4)), "foreign_inner"},
		{"multicast destination", peer4, v4, valid(13, ptbAbout("224.0.0.1", "203.0.113.13", 42013)), "bad_destination"},
		{"broadcast destination", peer4, v4, valid(14, ptbAbout("255.255.255.255", "203.0.113.14", 42014)), "bad_destination"},
		{"subnet broadcast destination", peer4, v4, valid(15, ptbAbout("10.77.0.255", "203.0.113.15", 42015)), "bad_destination"},
		{"multicast destination v6", peer6, v6, valid(16, ptbAbout("ff02::1", "2001:db8:2::16", 42016)), "bad_destination"},
	}
	rx := rxPackets(t, tns, "pmtud0")
	for _, tc := range cases {
		before, drops := tgt.Metrics(t), filterDrops(t, tgt)
		attacker.send(t, tc.src, tc.dst, transport.DefaultTunnelPort, tc.d)
		if tc.want != "" {
			waitFor(t, tc.name+": counted as "+tc.want, func() bool { return tgt.Metrics(t)[result(tc.want)] == before[result(tc.want)]+1 })
		} else {
			waitFor(t, tc.name+": dropped by the kernel filter", func() bool { return filterDrops(t, tgt) == drops+1 })
		}
		after := tgt.Metrics(t)
		for _, r := range allResults {
			want := before[result(r)]
			if r == tc.want {
				want++
			}
			if got := after[result(r)]; got != want {
				t.Errorf("%s: %s = %v, want %v", tc.name, result(r), got, want)
			}
		}
	}
	// Only the one genuine (captured) datagram reached pmtud0.
	if got := rxPackets(t, tns, "pmtud0") - rx; got != 1 {
		t.Errorf("pmtud0 rx went up by %d, want 1 (the captured datagram's first delivery)", got)
	}
	if n := sniff.outgoing(); n != 0 {
		t.Errorf("%d PTBs left %s's uplink: something injected was forwarded", n, tns)
	}
}

// TestTunnelSocketNotOnVIP: a datagram from a peer's (forged) address,
// validly signed, sent to the node's VIP instead of its own address, is
// dropped by the kernel filter: the receiver never sees it.
func TestTunnelSocketNotOnVIP(t *testing.T) {
	s := testnet.NewSegment(t, "ptv", 2, 1)
	ds, _ := startTunnel(t, s, []string{keyA})
	attacker := newSpoofer(t, s.Routers[0])
	waitFor(t, "the tunnel filter to know the peers", func() bool { return filterReady(t, s.Nodes[0]) })
	before := ds[0].Metrics(t)
	drops := filterDrops(t, ds[0])
	peer := netip.MustParseAddr(s.V4[1])
	// The router routes the VIP to node 0.
	attacker.send(t, peer, netip.MustParseAddr(testnet.VIP4), transport.DefaultTunnelPort, sealed(t, keyA, ptbAbout(testnet.VIP4, "203.0.113.20", 42020), time.Now(), 1, 1))
	waitFor(t, "the filter's drop", func() bool { return filterDrops(t, ds[0]) == drops+1 })
	after := ds[0].Metrics(t)
	for _, r := range allResults {
		if after[result(r)] != before[result(r)] {
			t.Errorf("%s moved: the datagram to the VIP reached the receiver", result(r))
		}
	}
	// The same datagram to the node's own address is received.
	attacker.send(t, peer, netip.MustParseAddr(s.V4[0]), transport.DefaultTunnelPort, sealed(t, keyA, ptbAbout(testnet.VIP4, "203.0.113.21", 42021), time.Now(), 1, 2))
	waitFor(t, "injected via the node address", func() bool { return ds[0].Metrics(t)[result("injected")] == before[result("injected")]+1 })
}

// TestTunnelFloodFromOnePeer: a peer (or whoever holds the key and forges
// its address) floods valid datagrams, without pause until the genuine
// relays are through; the kernel's per-source limit and its own bucket
// refuse the excess, and relays from another peer keep reaching the kernel
// meanwhile: the flood cannot fill the receiver's socket buffer.
func TestTunnelFloodFromOnePeer(t *testing.T) {
	s := testnet.NewSegment(t, "ptf", 3, 1)
	ds, _ := startTunnel(t, s, []string{keyA})
	const target = 1
	tns, tgt := s.Nodes[target], ds[target]
	attacker := newSpoofer(t, s.Routers[0])
	waitFor(t, "the tunnel filter to know the peers", func() bool { return filterReady(t, tns) })
	before := tgt.Metrics(t)
	const socketDrops = "gopmtud_tunnel_socket_drops_total"
	if _, ok := before[socketDrops]; !ok {
		t.Fatalf("%s not exported", socketDrops)
	}
	start := time.Now()

	const floodN = 300000 // a bound: the flood runs until the genuine relays are through
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		batch := make([][]byte, 0, 100)
		for c := uint64(1); c <= floodN; c++ {
			batch = append(batch, sealed(t, keyA, ptbAbout(testnet.VIP4, fmt.Sprintf("203.0.114.%d", c%250+1), int(20000+c)), time.Now(), 77, c))
			if len(batch) == cap(batch) {
				attacker.send(t, netip.MustParseAddr(s.V4[2]), netip.MustParseAddr(s.V4[target]), transport.DefaultTunnelPort, batch...)
				batch = batch[:0]
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	}()
	// Meanwhile, node 1 relays genuine PTBs about five flows of the target.
	var socks []*pmtuSocket
	for i := range 5 {
		client := fmt.Sprintf("203.0.113.%d", 100+i)
		socks = append(socks, openPMTUSocket(t, tns, netip.MustParseAddr(testnet.VIP4), netip.MustParseAddr(client), 43000+i))
		waitFor(t, "the flood to exhaust the peer's bucket", func() bool {
			return tgt.Metrics(t)[result("rate_limited_peer")] > before[result("rate_limited_peer")]
		})
		s.Inject(t, 0, ptbAbout(testnet.VIP4, client, 43000+i), false)
	}
	for i, so := range socks {
		waitFor(t, fmt.Sprintf("genuine relay %d applied during the flood", i), func() bool { return so.mtu() == 1400 })
	}
	close(stop)
	wg.Wait()
	secs := time.Since(start).Seconds()
	after := tgt.Metrics(t)
	limited := after[result("rate_limited_peer")] - before[result("rate_limited_peer")]
	injected := after[result("injected")] - before[result("injected")]
	kernel := after[`gopmtud_tunnel_filtered_total{reason="peer_rate"}`] - before[`gopmtud_tunnel_filtered_total{reason="peer_rate"}`]
	drops := after[socketDrops] - before[socketDrops]
	t.Logf("flood for %.1f s: %v injected (5 genuine), %v rate_limited_peer, %v dropped by the kernel's per-source limit, %v dropped at the full socket",
		secs, injected, limited, kernel, drops)
	// The peer's bucket: a burst of 200, then 100/s (one more second of slack).
	if limited == 0 || injected > 200+100*(secs+1)+5 {
		t.Errorf("flood: %v injected, %v rate-limited: the per-peer bound did not hold", injected, limited)
	}
	if kernel == 0 || drops != 0 {
		t.Errorf("%v dropped by the kernel's per-source limit, %v at the socket: want the flood cut before the socket", kernel, drops)
	}
}

// TestTunnelKeyRotation rotates the key node by node, relaying a PTB after
// every single file change: add key B everywhere (A signs), switch the
// signer to B, drop A. No relay is lost; at the end key A is refused.
func TestTunnelKeyRotation(t *testing.T) {
	s := testnet.NewSegment(t, "ptk", 3, 1)
	ds, files := startTunnel(t, s, []string{keyA})
	port := 44000
	relay := func(step string) {
		t.Helper()
		before := []map[string]float64{ds[1].Metrics(t), ds[2].Metrics(t)}
		port++
		s.Inject(t, 0, ptbAbout(testnet.VIP4, "203.0.113.50", port), false)
		for i, d := range ds[1:] {
			waitFor(t, fmt.Sprintf("%s: node%d injected", step, i+2), func() bool {
				return d.Metrics(t)[result("injected")] == before[i][result("injected")]+1
			})
		}
	}
	reload := func(i int, keys ...string) {
		t.Helper()
		const ok = `gopmtud_tunnel_key_reloads_total{result="ok"}`
		n := ds[i].Metrics(t)[ok]
		writeKeys(t, files[i], keys...)
		testnet.WaitFor(t, fmt.Sprintf("node%d reloads its keys", i+1), 5*time.Second, func() bool { return ds[i].Metrics(t)[ok] == n+1 })
	}
	relay("start")
	for _, phase := range []struct {
		name string
		keys []string
	}{{"add B", []string{keyA, keyB}}, {"sign with B", []string{keyB, keyA}}, {"drop A", []string{keyB}}} {
		for i := range ds {
			reload(i, phase.keys...)
			relay(fmt.Sprintf("%s, node%d done", phase.name, i+1))
		}
	}
	// A bad file keeps the keys in use.
	writeKeys(t, files[1], "not a key")
	testnet.WaitFor(t, "the bad file refused", 5*time.Second, func() bool {
		return ds[1].Metrics(t)[`gopmtud_tunnel_key_reloads_total{result="error"}`] == 1
	})
	relay("after a bad key file")
	if body, _ := ds[1].Ready(); !contains(body, "previous keys kept") {
		t.Errorf("readiness detail does not show the refused key file:\n%s", body)
	}
	// Key A is gone: a datagram signed with it is refused.
	attacker := newSpoofer(t, s.Routers[0])
	before := ds[2].Metrics(t)
	attacker.send(t, netip.MustParseAddr(s.V4[0]), netip.MustParseAddr(s.V4[2]), transport.DefaultTunnelPort, sealed(t, keyA, ptbAbout(testnet.VIP4, "203.0.113.51", 44999), time.Now(), 1, 1))
	waitFor(t, "key A refused", func() bool { return ds[2].Metrics(t)[result("unknown_key")] == before[result("unknown_key")]+1 })
}
