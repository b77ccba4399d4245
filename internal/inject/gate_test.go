package inject

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

var (
	peer4 = netip.MustParseAddr("10.88.0.1")
	peer6 = netip.MustParseAddr("fd88::1")
)

// testPeer knows S's first addresses, both as node "s".
func testPeer(a netip.Addr) (string, bool) { return "s", a == peer4 || a == peer6 }

type keys struct{ ring *tunnelwire.Keyring }

func (k *keys) Keyring() *tunnelwire.Keyring { return k.ring }

func ring(t testing.TB, fill ...byte) *tunnelwire.Keyring {
	t.Helper()
	var ks []tunnelwire.Key
	for _, f := range fill {
		k, err := tunnelwire.NewKey(bytes.Repeat([]byte{f}, 32))
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	r, err := tunnelwire.NewKeyring(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testKeys is what the test receivers verify with; sender signs as a peer.
var (
	testKeys = &keys{}
	sender   = struct {
		epoch, counter uint64
	}{epoch: 1}
)

func init() {
	k, _ := tunnelwire.NewKey(bytes.Repeat([]byte{1}, 32))
	testKeys.ring, _ = tunnelwire.NewKeyring(k)
}

// sealWith makes a datagram as a peer's sender would, with the given keys
// (nil: unsigned), timestamp and counter.
func sealWith(r *tunnelwire.Keyring, family uint8, pkt []byte, ts time.Time, epoch, counter uint64) []byte {
	d := make([]byte, tunnelwire.HeaderLen, tunnelwire.HeaderLen+len(pkt))
	h := tunnelwire.Header{Family: family, Timestamp: ts.UnixMilli(), Epoch: epoch, Counter: counter}
	tunnelwire.NewSealer(r).Seal(d, &h, pkt)
	return append(d, pkt...)
}

// datagram is the next datagram of the test sender, signed with testKeys.
func datagram(family uint8, pkt []byte) []byte {
	sender.counter++
	return sealWith(testKeys.ring, family, pkt, time.Now(), sender.epoch, sender.counter)
}

func ptb4() []byte {
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr("198.51.100.10"),
		Client: netip.MustParseAddr("203.0.113.5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
}

func ptb6() []byte {
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("fd77::fe"), VIP: netip.MustParseAddr("2001:db8:100::10"),
		Client: netip.MustParseAddr("2001:db8:2::5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
}

// ptbTo is an IPv4 PTB to dst about a packet from innerSrc: built about
// innerSrc, then readdressed (the outer header checksum redone; the ICMP
// checksum does not cover it).
func ptbTo(dst, innerSrc string) []byte {
	p := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(innerSrc),
		Client: netip.MustParseAddr("203.0.113.5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
	a := netip.MustParseAddr(dst).As4()
	copy(p[16:20], a[:])
	p[10], p[11] = 0, 0
	sum := uint32(0)
	for i := 0; i < 20; i += 2 {
		sum += uint32(p[i])<<8 | uint32(p[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	p[10], p[11] = byte(^sum>>8), byte(^sum)
	return p
}

func testGate(t testing.TB, mod func(*GateConfig)) *Gate {
	t.Helper()
	cfg := GateConfig{
		Peer: testPeer, Keys: testKeys, Limits: ptb.DefaultLimits(),
		// 198.51.100.10 and 2001:db8:100::10 are local; 192.0.2.0/24 is
		// --relay-for; 192.0.2.200 broadcast of a local subnet.
		IsLocal: func(a netip.Addr) bool {
			return a == netip.MustParseAddr("198.51.100.10") || a == netip.MustParseAddr("2001:db8:100::10") || a == netip.MustParseAddr("127.0.0.1")
		},
		IsBroadcast: func(a netip.Addr) bool { return a == netip.MustParseAddr("198.51.100.255") },
		RelayFor:    []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		IsVIP:       func(a netip.Addr) bool { return a == netip.MustParseAddr("203.0.113.80") },
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGateClassify(t *testing.T) {
	now := time.Now()
	notPTB := ptb4()
	notPTB[20] = 0 // ICMP echo reply: checksum and type both wrong
	padded := append(ptb4(), 0, 0, 0, 0)
	replayed := datagram(4, ptb4())
	stranger := netip.MustParseAddr("10.88.0.9")
	for _, tc := range []struct {
		name   string
		d      []byte
		from   netip.Addr
		want   Result
		reason drop.Reason
		pkt    []byte
	}{
		{"v4 from a peer", datagram(4, ptb4()), peer4, Injected, drop.None, ptb4()},
		{"v6 from a peer", datagram(6, ptb6()), peer6, Injected, drop.None, ptb6()},
		{"v4 peer as v4-mapped (dual-stack socket)", datagram(4, ptb4()), netip.MustParseAddr("::ffff:10.88.0.1"), Injected, drop.None, ptb4()},
		{"v6 peer with a zone", datagram(6, ptb6()), peer6.WithZone("eth0"), Injected, drop.None, ptb6()},
		{"v6 packet from a v4 peer", datagram(6, ptb6()), peer4, Injected, drop.None, ptb6()},
		{"link padding is not injected", datagram(4, padded), peer4, Injected, drop.None, ptb4()},
		{"VIP in --relay-for", datagram(4, ptbTo("192.0.2.7", "192.0.2.7")), peer4, Injected, drop.None, ptbTo("192.0.2.7", "192.0.2.7")},
		{"Service VIP", datagram(4, ptbTo("203.0.113.80", "203.0.113.80")), peer4, Injected, drop.None, ptbTo("203.0.113.80", "203.0.113.80")},
		{"first of a pair", replayed, peer4, Injected, drop.None, ptb4()},

		{"not a peer", datagram(4, ptb4()), stranger, NotPeer, drop.None, nil},
		{"garbage from a non-peer is not_peer", []byte("hello"), stranger, NotPeer, drop.None, nil},
		{"garbage from a peer", []byte("GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxx"), peer4, BadHeader, drop.None, nil},
		{"version 1 header", append([]byte("PMTU\x01\x04\x00\x00"), ptb4()...), peer4, BadHeader, drop.None, nil},
		{"family mismatch", datagram(6, ptb4()), peer4, BadHeader, drop.None, nil},
		{"unsigned", sealWith(nil, 4, ptb4(), now, 1, 1000), peer4, UnknownKey, drop.None, nil},
		{"wrong key", sealWith(ring(t, 2), 4, ptb4(), now, 1, 1001), peer4, UnknownKey, drop.None, nil},
		{"forged MAC", forge(datagram(4, ptb4())), peer4, BadMAC, drop.None, nil},
		{"replayed", replayed, peer4, Replayed, drop.None, nil},
		{"old timestamp", sealWith(testKeys.ring, 4, ptb4(), now.Add(-11*time.Second), 1, 1002), peer4, Stale, drop.None, nil},
		{"future timestamp", sealWith(testKeys.ring, 4, ptb4(), now.Add(11*time.Second), 1, 1003), peer4, Stale, drop.None, nil},
		{"not a PTB", datagram(4, notPTB), peer4, BadPTB, drop.BadChecksum, nil},
		{"cut short (total length lies)", datagram(4, ptb4()[:30]), peer4, BadPTB, drop.BadIPHeader, nil},
		{"not our address", datagram(4, ptbTo("198.51.100.11", "198.51.100.11")), peer4, NotOurs, drop.None, nil},
		{"foreign quoted source", datagram(4, ptbTo("198.51.100.10", "198.51.100.11")), peer4, ForeignInner, drop.ForeignInner, nil},
		{"multicast", datagram(4, ptbTo("224.0.0.1", "224.0.0.1")), peer4, BadDestination, drop.None, nil},
		{"broadcast", datagram(4, ptbTo("255.255.255.255", "255.255.255.255")), peer4, BadDestination, drop.None, nil},
		{"subnet broadcast", datagram(4, ptbTo("198.51.100.255", "198.51.100.255")), peer4, BadDestination, drop.None, nil},
		{"loopback", datagram(4, ptbTo("127.0.0.1", "127.0.0.1")), peer4, BadDestination, drop.None, nil},
		{"unspecified", datagram(4, ptbTo("0.0.0.0", "0.0.0.0")), peer4, BadDestination, drop.None, nil},
	} {
		g := testGateShared(t)
		var m ptb.Message
		pkt, got, reason := g.Classify(tc.d, tc.from, now, &m)
		if got != tc.want || reason != tc.reason || !bytes.Equal(pkt, tc.pkt) {
			t.Errorf("%s: Classify = %d bytes, %v, %v; want %d bytes, %v, %v", tc.name, len(pkt), got, reason, len(tc.pkt), tc.want, tc.reason)
		}
	}
}

var shared *Gate

func testGateShared(t *testing.T) *Gate {
	if shared == nil {
		shared = testGate(t, nil)
	}
	return shared
}

func forge(d []byte) []byte {
	d[tunnelwire.HeaderLen-1] ^= 1
	return d
}

func TestGateInsecure(t *testing.T) {
	if _, err := NewGate(GateConfig{Peer: testPeer}); err == nil {
		t.Fatal("a gate without keys and without Insecure")
	}
	g := testGate(t, func(c *GateConfig) { c.Keys, c.Insecure = nil, true })
	var m ptb.Message
	if _, got, _ := g.Classify(sealWith(nil, 4, ptb4(), time.Now(), 9, 1), peer4, time.Now(), &m); got != Injected {
		t.Fatalf("insecure, unsigned: %v", got)
	}
	if _, got, _ := g.Classify(sealWith(nil, 4, ptb4(), time.Now(), 9, 1), peer4, time.Now(), &m); got != Replayed {
		t.Fatalf("insecure still refuses replays: %v", got)
	}
}

// Rotation: add key 2 (verifies), sign with it, drop key 1.
func TestGateKeyRotation(t *testing.T) {
	k := &keys{ring: ring(t, 1)}
	g := testGate(t, func(c *GateConfig) { c.Keys = k })
	now := time.Now()
	var m ptb.Message
	n := uint64(0)
	try := func(signer *tunnelwire.Keyring) Result {
		n++
		_, res, _ := g.Classify(sealWith(signer, 4, ptb4(), now, 5, n), peer4, now, &m)
		return res
	}
	for i, step := range []struct {
		receiver, signer *tunnelwire.Keyring
		want             Result
	}{
		{ring(t, 1), ring(t, 1), Injected},
		{ring(t, 1, 2), ring(t, 1), Injected},    // 2 added everywhere
		{ring(t, 1, 2), ring(t, 2, 1), Injected}, // a sender switched to 2
		{ring(t, 2, 1), ring(t, 1), Injected},    // a sender not yet switched
		{ring(t, 2), ring(t, 2), Injected},       // 1 dropped
		{ring(t, 2), ring(t, 1), UnknownKey},
	} {
		k.ring = step.receiver
		if got := try(step.signer); got != step.want {
			t.Fatalf("step %d: %v, want %v", i, got, step.want)
		}
	}
}

// A flood from one peer is refused by its own bucket; another peer's
// datagrams keep passing.
func TestGateRateLimits(t *testing.T) {
	other := netip.MustParseAddr("10.88.0.3")
	g := testGate(t, func(c *GateConfig) {
		c.PeerRate, c.PeerBurst, c.GlobalRate, c.GlobalBurst = 10, 5, 1000, 50
		c.Peer = func(a netip.Addr) (string, bool) {
			if a == other {
				return "o", true
			}
			return testPeer(a)
		}
	})
	now := time.Now()
	var m ptb.Message
	results := map[Result]int{}
	for i := range 100 {
		_, res, _ := g.Classify(sealWith(testKeys.ring, 4, ptb4(), now, 7, uint64(i+1)), peer4, now, &m)
		results[res]++
		if i%20 == 0 {
			if _, res, _ := g.Classify(sealWith(testKeys.ring, 4, ptb4(), now, 8, uint64(i+1)), other, now, &m); res != Injected {
				t.Fatalf("the other peer's datagram %d: %v", i, res)
			}
		}
	}
	if results[Injected] != 5 || results[RateLimitedPeer] != 95 {
		t.Fatalf("flood: %v, want 5 injected, 95 rate_limited_peer", results)
	}
	// The overall bucket (50) is shared: 45 more from fresh peers.
	for i := range 60 {
		name := "fresh-" + strconv.Itoa(i)
		g.cfg.Peer = func(netip.Addr) (string, bool) { return name, true }
		_, res, _ := g.Classify(sealWith(testKeys.ring, 4, ptb4(), now, 9, uint64(i+1)), other, now, &m)
		results[res]++
	}
	if results[RateLimitedGlobal] != 60-(50-5-5) {
		t.Fatalf("overall: %v", results)
	}
}

func TestGateClassifyDoesNotAllocate(t *testing.T) {
	g := testGate(t, nil)
	now := time.Now()
	d4, d6, bad := datagram(4, ptb4()), datagram(6, ptb6()), []byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
	var m ptb.Message
	g.Classify(d4, peer4, now, &m) // the peer's window is made once
	n := testing.AllocsPerRun(100, func() {
		g.Classify(d4, peer4, now, &m) // replayed: the whole path up to the window
		g.Classify(d6, peer6, now, &m)
		g.Classify(bad, peer4, now, &m)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

func TestResultNamesAreUniqueAndStable(t *testing.T) {
	want := []string{"injected", "not_peer", "bad_header", "unknown_key", "bad_mac", "stale", "replayed",
		"rate_limited_peer", "rate_limited_global", "bad_ptb", "bad_destination", "foreign_inner", "not_ours", "inject_error"}
	seen := map[string]bool{}
	for i, r := range Results() {
		if r.String() != want[i] || seen[r.String()] {
			t.Errorf("result %d is %q, want %q once", i, r.String(), want[i])
		}
		seen[r.String()] = true
	}
	if len(Results()) != len(want) || Result(200).String() != "unknown" {
		t.Errorf("%d results", len(Results()))
	}
}
