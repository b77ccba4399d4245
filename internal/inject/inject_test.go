package inject

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

var (
	peer4 = netip.MustParseAddr("10.88.0.1")
	peer6 = netip.MustParseAddr("fd88::1")
)

func isPeer(a netip.Addr) bool { return a == peer4 || a == peer6 }

func datagram(family uint8, pkt []byte) []byte {
	d := make([]byte, transport.TunnelHeaderLen, transport.TunnelHeaderLen+len(pkt))
	transport.PutTunnelHeader(d, family)
	return append(d, pkt...)
}

func ptb4() []byte {
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr("198.51.100.10"),
		Client: netip.MustParseAddr("203.0.113.5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
}

func ptb6() []byte {
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("fd77::fe"), VIP: netip.MustParseAddr("2001:db8:100::10"),
		Client: netip.MustParseAddr("2001:db8:2::5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
}

func TestClassify(t *testing.T) {
	notPTB := ptb4()
	notPTB[20] = 0 // ICMP echo reply: checksum and type both wrong
	padded := append(ptb4(), 0, 0, 0, 0)
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
		{"not a peer", datagram(4, ptb4()), netip.MustParseAddr("10.88.0.9"), NotPeer, drop.None, nil},
		{"garbage from a non-peer is not_peer", []byte("hello"), netip.MustParseAddr("10.88.0.9"), NotPeer, drop.None, nil},
		{"garbage from a peer", []byte("GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxx"), peer4, BadHeader, drop.None, nil},
		{"family mismatch", datagram(6, ptb4()), peer4, BadHeader, drop.None, nil},
		{"not a PTB", datagram(4, notPTB), peer4, BadPTB, drop.BadChecksum, nil},
		{"cut short (total length lies)", datagram(4, ptb4()[:30]), peer4, BadPTB, drop.BadIPHeader, nil},
	} {
		var m ptb.Message
		pkt, got, reason := Classify(tc.d, tc.from, isPeer, ptb.DefaultLimits(), &m)
		if got != tc.want || reason != tc.reason || !bytes.Equal(pkt, tc.pkt) {
			t.Errorf("%s: Classify = %d bytes, %v, %v; want %d bytes, %v, %v", tc.name, len(pkt), got, reason, len(tc.pkt), tc.want, tc.reason)
		}
	}
}

func TestClassifyRespectsLimits(t *testing.T) {
	small := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr("198.51.100.10"),
		Client: netip.MustParseAddr("203.0.113.5"), MTU: 100, SrcPort: 80, DstPort: 40000})
	var m ptb.Message
	if _, got, reason := Classify(datagram(4, small), peer4, isPeer, ptb.StrictLimits(), &m); got != BadPTB || reason != drop.BadMTU {
		t.Errorf("MTU 100 under strict limits: %v, %v; want bad_ptb, bad_mtu", got, reason)
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	d4, d6, bad := datagram(4, ptb4()), datagram(6, ptb6()), []byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
	var m ptb.Message
	lim := ptb.DefaultLimits()
	n := testing.AllocsPerRun(100, func() {
		Classify(d4, peer4, isPeer, lim, &m)
		Classify(d6, peer6, isPeer, lim, &m)
		Classify(bad, peer4, isPeer, lim, &m)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

func TestResultNamesAreUniqueAndStable(t *testing.T) {
	want := []string{"injected", "not_peer", "bad_header", "bad_ptb", "inject_error"}
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
