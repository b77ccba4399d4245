//go:build linux

package safety_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

const (
	received = "gopmtud_packets_received_total"
	relayed4 = `gopmtud_messages_relayed_total{family="ipv4"}`
	relayed6 = `gopmtud_messages_relayed_total{family="ipv6"}`
)

func dropped(reason string) string { return `gopmtud_packets_dropped_total{reason="` + reason + `"}` }

// hostileCase is one message injected as a whole Ethernet frame from the
// router to node 1, and the reason go-pmtud must count it under.
type hostileCase struct {
	name      string
	pkt       []byte
	want      string // drop reason
	broadcast bool   // send to ff:ff:ff:ff:ff:ff instead of node 1's MAC
}

func hostileCases(s *testnet.Segment) []hostileCase {
	r4 := netip.MustParseAddr(s.R4[0])
	r6 := netip.MustParseAddr(s.R6[0])
	other4 := netip.MustParseAddr("192.0.2.99")
	other6 := netip.MustParseAddr("2001:db8:99::99")
	q4 := quote4(vip4, client4, 6, tcp(443, 40000))
	q6 := quote6(vip6, client6, 6, tcp(443, 40000))
	rng := rand.New(rand.NewPCG(1, 2)) // fixed: the same garbage every run

	// Breakers that keep everything else right.
	withIPFlags := func(b []byte, flags uint16) []byte {
		binary.BigEndian.PutUint16(b[6:], flags)
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:int(b[0]&0x0f)*4], 0))
		return b
	}
	withTotal := func(b []byte, total uint16) []byte {
		binary.BigEndian.PutUint16(b[2:], total)
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:20], 0))
		return b
	}
	badICMPSum := func(b []byte, off int) []byte { b[off+2] ^= 0x5a; return b }
	garbage := func(n int, first byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0] = first
		return b
	}
	dstOpts := func(n int) []byte { // n destination-options headers, the last pointing at ICMPv6
		var b []byte
		for i := range n {
			next := byte(60)
			if i == n-1 {
				next = 58
			}
			b = append(b, next, 0, 1, 4, 0, 0, 0, 0) // PadN(4): 8 bytes
		}
		return b
	}
	frag6 := []byte{58, 0, 0, 1, 0, 0, 0x12, 0x34} // offset 0, M=1
	payloadLen := func(b []byte, n uint16) []byte { binary.BigEndian.PutUint16(b[4:], n); return b }

	return []hostileCase{
		// ICMPv4
		{"v4 ICMP cut after type and code", ip4(r4, nil, []byte{3, 4}), "truncated", false},
		{"v4 no quoted packet", ip4(r4, nil, icmp4(3, 4, 1400, nil)), "inner_truncated", false},
		{"v4 quoted header cut to 10 bytes", ip4(r4, nil, icmp4(3, 4, 1400, q4[:10])), "inner_truncated", false},
		{"v4 quoted IHL 3", ip4(r4, nil, icmp4(3, 4, 1400, func() []byte { q := quote4(vip4, client4, 6, tcp(443, 1)); q[0] = 0x43; return q }())), "inner_bad_header", false},
		{"v4 quoted IHL 15 beyond the quote", ip4(r4, nil, icmp4(3, 4, 1400, func() []byte { q := quote4(vip4, client4, 6, nil); q[0] = 0x4f; return q }())), "inner_truncated", false},
		{"v4 quoted TCP cut to 2 bytes", ip4(r4, nil, icmp4(3, 4, 1400, quote4(vip4, client4, 6, []byte{1, 187}))), "inner_truncated", false},
		{"v4 IPv6 packet quoted in ICMPv4", ip4(r4, nil, icmp4(3, 4, 1400, q6)), "inner_bad_version", false},
		{"v4 MTU 0", good4(r4, 0, 40000), "bad_mtu", false},
		{"v4 MTU 1", good4(r4, 1, 40000), "bad_mtu", false},
		{"v4 MTU 65535 (--strict)", good4(r4, 65535, 40000), "bad_mtu", false},
		{"v4 bad ICMP checksum", badICMPSum(good4(r4, 1400, 40000), 20), "bad_checksum", false},
		{"v4 error about an error", ip4(r4, nil, icmp4(3, 4, 1400, quote4(vip4, client4, 1, []byte{3, 1, 0, 0, 0, 0, 0, 0}))), "inner_icmp_error", false},
		{"v4 total length says 24 (kernel trims the rest)", withTotal(good4(r4, 1400, 40000), 24), "truncated", false},
		{"v4 total length says 46 (kernel trims the rest)", withTotal(good4(r4, 1400, 40000), 46), "bad_checksum", false},
		{"v4 first fragment (MF)", withIPFlags(good4(r4, 1400, 40000), 0x2000), "fragment", false},
		{"v4 IP options, about somebody else", ip4(r4, []byte{1, 1, 1, 0}, icmp4(3, 4, 1400, quote4(other4, client4, 6, tcp(443, 1)))), "foreign_inner", false},
		{"v4 about somebody else's address", ip4(r4, nil, icmp4(3, 4, 1400, quote4(other4, client4, 6, tcp(443, 1)))), "foreign_inner", false},
		{"v4 random garbage as quote", ip4(r4, nil, icmp4(3, 4, 1400, garbage(200, 0xf7))), "inner_bad_version", false},
		{"v4 spoofed from a peer", good4(netip.MustParseAddr(s.V4[1]), 1400, 40000), "from_peer", false},
		{"v4 spoofed from the node itself", good4(netip.MustParseAddr(s.V4[0]), 1400, 40000), "from_self", false},
		{"v4 to the L2 broadcast address", good4(r4, 1400, 40000), "l2_broadcast", true},
		{"v4 MTU 1400 quoting a 1400-byte packet", ip4(r4, nil, icmp4(3, 4, 1400, quotedLen4(q4, 1400))), "mtu_not_smaller", false},
		{"v4 quoted total length 0", ip4(r4, nil, icmp4(3, 4, 1400, quotedLen4(q4, 0))), "inner_bad_length", false},
		// ICMPv6
		{"v6 MTU 1279", good6(r6, 1279, 40000), "bad_mtu", false},
		{"v6 MTU 0", good6(r6, 0, 40000), "bad_mtu", false},
		{"v6 bad ICMPv6 checksum", badICMPSum(good6(r6, 1400, 40000), 40), "bad_checksum", false},
		{"v6 IPv4 packet quoted in ICMPv6", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, q4)), "inner_bad_version", false},
		{"v6 error about an error", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, quote6(vip6, client6, 58, []byte{1, 4, 0, 0, 0, 0, 0, 0}))), "inner_icmp_error", false},
		{"v6 nine destination-options headers", ip6(r6, 60, dstOpts(9), icmp6(r6, 2, 0, 1400, q6)), "bad_ip_header", false},
		{"v6 first fragment (M)", ip6(r6, 44, frag6, icmp6(r6, 2, 0, 1400, q6)), "fragment", false},
		{"v6 payload length says 4 (kernel trims the rest)", payloadLen(good6(r6, 1400, 40000), 4), "truncated", false},
		{"v6 about somebody else's address", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, quote6(other6, client6, 6, tcp(443, 1)))), "foreign_inner", false},
		{"v6 random garbage as quote", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, garbage(300, 0xf0))), "inner_bad_version", false},
		{"v6 quoted header cut to 30 bytes", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, q6[:30])), "inner_truncated", false},
		{"v6 MTU 1400 quoting a 1400-byte packet", ip6(r6, 58, nil, icmp6(r6, 2, 0, 1400, quotedLen6(q6, 1360))), "mtu_not_smaller", false},
	}
}

// quotedLen4 is a copy of the quoted IPv4 packet q with total length n
// (header checksum kept right, so only the length is wrong).
func quotedLen4(q []byte, n uint16) []byte {
	q = append([]byte(nil), q...)
	binary.BigEndian.PutUint16(q[2:], n)
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], ptbtest.Checksum(q[:20], 0))
	return q
}

// quotedLen6 is a copy of the quoted IPv6 packet q with payload length n.
func quotedLen6(q []byte, n uint16) []byte {
	q = append([]byte(nil), q...)
	binary.BigEndian.PutUint16(q[4:], n)
	return q
}

// notDelivered are packets that never reach NFLOG, so ptb's unit tests
// cover their reasons instead: malformed ones the node's kernel discards in
// ip_rcv / ipv6_rcv, before the netfilter prerouting hook, and ones our
// rule does not match (the kernel's l4proto for ICMPv6 behind AH is AH,
// nft stops there as the parser does; other ICMP types).
func notDelivered(s *testnet.Segment) []struct {
	name      string
	etherType uint16
	pkt       []byte
} {
	r4 := netip.MustParseAddr(s.R4[0])
	r6 := netip.MustParseAddr(s.R6[0])
	mut := func(b []byte, f func([]byte)) []byte { f(b); return b }
	q4 := quote4(vip4, client4, 6, tcp(443, 1))
	q6 := quote6(vip6, client6, 6, tcp(443, 1))
	ah := []byte{58, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // AH, 24 bytes
	return []struct {
		name      string
		etherType uint16
		pkt       []byte
	}{
		{"v4 bad header checksum (bad_ip_header)", unix.ETH_P_IP, mut(good4(r4, 1400, 1), func(b []byte) { b[10] ^= 0xff })},
		{"v4 IHL 4 (bad_ip_header)", unix.ETH_P_IP, mut(good4(r4, 1400, 1), func(b []byte) {
			b[0] = 0x44
			b[10], b[11] = 0, 0
			binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:16], 0))
		})},
		{"v4 total length beyond the frame (bad_ip_header)", unix.ETH_P_IP, mut(good4(r4, 1400, 1), func(b []byte) {
			binary.BigEndian.PutUint16(b[2:], 2000)
			b[10], b[11] = 0, 0
			binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:20], 0))
		})},
		{"v4 header cut to 12 bytes (truncated)", unix.ETH_P_IP, good4(r4, 1400, 1)[:12]},
		{"version 6 in an IPv4 frame (bad_ip_version)", unix.ETH_P_IP, good6(r6, 1400, 1)},
		{"version 4 in an IPv6 frame (bad_ip_version)", unix.ETH_P_IPV6, good4(r4, 1400, 1)},
		{"v6 payload length beyond the frame (bad_ip_header)", unix.ETH_P_IPV6, mut(good6(r6, 1400, 1), func(b []byte) { binary.BigEndian.PutUint16(b[4:], 1400) })},
		{"v6 header cut to 30 bytes (truncated)", unix.ETH_P_IPV6, good6(r6, 1400, 1)[:30]},
		{"v6 ICMPv6 behind an AH header (not_icmp)", unix.ETH_P_IPV6, ip6(r6, 51, ah, icmp6(r6, 2, 0, 1400, q6))},
		{"v4 ICMP port unreachable (not_ptb)", unix.ETH_P_IP, ip4(r4, nil, icmp4(3, 3, 0, q4))},
		{"v6 ICMPv6 time exceeded (not_ptb)", unix.ETH_P_IPV6, ip6(r6, 58, nil, icmp6(r6, 3, 0, 0, q6))},
	}
}

// TestHostileInputThroughNFLOG injects malformed and hostile messages for
// real, one at a time, and checks each is counted under its reason, none
// reaches a peer, the daemon lives, and a good message is relayed after.
func TestHostileInputThroughNFLOG(t *testing.T) {
	s := testnet.NewSegment(t, "psh", 3, 1)
	// --strict makes MTU 65535 a bad_mtu; under the default limits it is a
	// valid value (see docs/operating-under-attack.md).
	ds := s.Start(t, pmtud, "routed", "--strict")
	node, peersOf := ds[0], ds[1:]
	fi := s.NewFrameInjector(t, 0, 0)

	base := node.Metrics(t)
	peerBase := []map[string]float64{peersOf[0].Metrics(t), peersOf[1].Metrics(t)}

	// 1. What the kernel drops before prerouting, or the rule does not
	// match, never reaches go-pmtud.
	// A marker that does reach it follows; frames on one veth keep their
	// order, so once the marker is counted the others had their chance.
	for _, k := range notDelivered(s) {
		if err := fi.SendType(k.etherType, k.pkt); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
	}
	marker := good4(netip.MustParseAddr(s.R4[0]), 0, 1) // bad_mtu
	if err := fi.Send(marker); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "the marker after the kernel-dropped frames", 3*time.Second, func() bool {
		return node.Metrics(t)[dropped("bad_mtu")]-base[dropped("bad_mtu")] >= 1
	})
	time.Sleep(100 * time.Millisecond)
	m := node.Metrics(t)
	if got := m[received] - base[received]; got != 1 {
		t.Errorf("NFLOG delivered %v packets for %d undeliverable frames and one marker, want only the marker", got, len(notDelivered(s)))
	}

	// 2. Each hostile message, one at a time, counted under its reason.
	cases := hostileCases(s)
	want := map[string]float64{"bad_mtu": 1} // the marker
	broadcasts := 0.0
	for _, c := range cases {
		if c.broadcast {
			broadcasts++
		}
		if injectOne(t, fi, node, c) {
			want[c.want]++
		}
	}

	// 3. Totals: nothing relayed, nothing sent, nothing reached a peer.
	m = node.Metrics(t)
	for reason, n := range want {
		if got := m[dropped(reason)] - base[dropped(reason)]; got != n {
			t.Errorf("dropped{%s} grew by %v, want %v", reason, got, n)
		}
	}
	if d := m[relayed4] + m[relayed6] - base[relayed4] - base[relayed6]; d != 0 {
		t.Errorf("%v hostile messages relayed", d)
	}
	if d := m[`gopmtud_frames_sent_total{transport="routed"}`] - base[`gopmtud_frames_sent_total{transport="routed"}`]; d != 0 {
		t.Errorf("%v frames sent for hostile messages", d)
	}
	// A broadcast frame reaches the peers straight from the router (and is
	// dropped there for the same reason); anything else would be a copy.
	time.Sleep(200 * time.Millisecond) // room for a stray copy to arrive
	for i, p := range peersOf {
		pm := p.Metrics(t)
		if d := pm[received] - peerBase[i][received]; d != broadcasts {
			t.Errorf("peer %s received %v packets during the hostile phase, want only the %v broadcast(s)", p.NS, d, broadcasts)
		}
		if d := pm[dropped("l2_broadcast")] - peerBase[i][dropped("l2_broadcast")]; d != broadcasts {
			t.Errorf("peer %s dropped %v broadcasts, want %v", p.NS, d, broadcasts)
		}
	}
	t.Logf("%d hostile messages through NFLOG, %d never delivered (kernel or rule); counted: %v", len(cases), len(notDelivered(s)), want)

	// 4. Alive and still relaying.
	if node.Exited() {
		t.Fatalf("go-pmtud exited:\n%s", node.Log())
	}
	if _, err := node.Get("/healthz", testnet.HealthPort); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	assertRelays(t, s, fi, node, peersOf, netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R6[0]), 45000)
}

// injectOne sends one hostile case, waits until node decided it, and checks
// it was counted once under its reason. It reports whether NFLOG delivered it.
func injectOne(t *testing.T, fi *testnet.FrameInjector, node *testnet.Daemon, c hostileCase) bool {
	t.Helper()
	before := node.Metrics(t)
	var err error
	if c.broadcast {
		err = fi.SendTo(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, c.pkt)
	} else {
		err = fi.Send(c.pkt)
	}
	if err != nil {
		t.Fatalf("%s: send: %v", c.name, err)
	}
	key := dropped(c.want)
	deadline := time.Now().Add(2 * time.Second)
	var after map[string]float64
	for {
		after = node.Metrics(t)
		if after[received] > before[received] && sumDrops(after)+after[relayed4]+after[relayed6] >= after[received] {
			break // decided
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after[received]-before[received] != 1 {
		t.Errorf("%s: NFLOG delivered %v packets, want 1", c.name, after[received]-before[received])
		return false
	}
	if after[key]-before[key] != 1 {
		t.Errorf("%s: not counted as %s; changed counters: %v", c.name, c.want, changed(before, after))
	}
	return true
}

// TestImplausibleMTUThroughNFLOG: under the default limits (no --strict) an
// MTU of 65535 is in range, so only the comparison with the quoted packet
// stops a frag-needed that claims a 65535-byte MTU about a 9000-byte
// packet; and a quoted total length of 0 is malformed. Both must be
// dropped and counted by a daemon relaying with l2, and nothing may reach
// a peer, while a good message still is relayed.
func TestImplausibleMTUThroughNFLOG(t *testing.T) {
	s := testnet.NewSegment(t, "pmv", 2, 1)
	ds := s.Start(t, pmtud, "l2")
	node, peer := ds[0], ds[1]
	fi := s.NewFrameInjector(t, 0, 0)
	r4 := netip.MustParseAddr(s.R4[0])
	r6 := netip.MustParseAddr(s.R6[0])
	q4 := quote4(vip4, client4, 6, tcp(443, 40001))
	q6 := quote6(vip6, client6, 6, tcp(443, 40001))
	cases := []hostileCase{
		{"v4 frag-needed MTU 65535 quoting a 9000-byte packet", good4(r4, 65535, 40001), "mtu_not_smaller", false},
		{"v4 quoted total length 0", ip4(r4, nil, icmp4(3, 4, 1400, quotedLen4(q4, 0))), "inner_bad_length", false},
		{"v6 PTB MTU 65535 quoting a 9000-byte packet", good6(r6, 65535, 40001), "mtu_not_smaller", false},
		{"v6 PTB MTU 9000 quoting a 9000-byte packet", ip6(r6, 58, nil, icmp6(r6, 2, 0, 9000, q6)), "mtu_not_smaller", false},
	}
	base, peerBase := node.Metrics(t), peer.Metrics(t)
	for _, c := range cases {
		injectOne(t, fi, node, c)
	}
	m := node.Metrics(t)
	if d := m[relayed4] + m[relayed6] - base[relayed4] - base[relayed6]; d != 0 {
		t.Errorf("%v implausible messages relayed", d)
	}
	time.Sleep(200 * time.Millisecond) // room for a stray copy to arrive
	if d := peer.Metrics(t)[received] - peerBase[received]; d != 0 {
		t.Errorf("peer received %v packets for implausible messages, want 0", d)
	}
	assertRelays(t, s, fi, node, ds[1:], r4, r6, 45001)
}

// assertRelays sends one good IPv4 and one good IPv6 PTB (with a fresh
// client port, so neither is a duplicate) and checks both reach every peer.
func assertRelays(t *testing.T, s *testnet.Segment, fi *testnet.FrameInjector, node *testnet.Daemon, peersOf []*testnet.Daemon, r4, r6 netip.Addr, dport uint16) {
	t.Helper()
	before := node.Metrics(t)
	var pb []map[string]float64
	for _, p := range peersOf {
		pb = append(pb, p.Metrics(t))
	}
	if err := fi.Send(good4(r4, 1400, dport)); err != nil {
		t.Fatal(err)
	}
	if err := fi.Send(good6(r6, 1400, dport)); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "a good message relayed in each family", 3*time.Second, func() bool {
		m := node.Metrics(t)
		return m[relayed4]-before[relayed4] == 1 && m[relayed6]-before[relayed6] == 1
	})
	for i, p := range peersOf {
		testnet.WaitFor(t, p.NS+" receiving both copies", 3*time.Second, func() bool {
			return p.Metrics(t)[dropped("from_peer")]-pb[i][dropped("from_peer")] == 2
		})
	}
}

func sumDrops(m map[string]float64) float64 {
	var n float64
	for k, v := range m {
		if len(k) > 30 && k[:30] == "gopmtud_packets_dropped_total{" {
			n += v
		}
	}
	return n
}

func changed(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if v != before[k] && k[:8] == "gopmtud_" && !isGauge(k) {
			out[k] = v - before[k]
		}
	}
	return out
}

func isGauge(k string) bool {
	for _, p := range []string{"gopmtud_relay_latency", "gopmtud_peers", "gopmtud_capture_up", "gopmtud_firewall_rule_up"} {
		if len(k) >= len(p) && k[:len(p)] == p {
			return true
		}
	}
	return false
}
