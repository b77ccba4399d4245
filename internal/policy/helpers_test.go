package policy

import (
	"math"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// The cast of the tests: this node (self) with a VIP, two peers, a router
// out in the world and a client behind it, in both families.
var (
	self4   = netip.MustParseAddr("10.0.0.1")
	self6   = netip.MustParseAddr("fd00::1")
	peerA4  = netip.MustParseAddr("10.0.0.2")
	peerB4  = netip.MustParseAddr("10.0.0.3")
	peerA6  = netip.MustParseAddr("fd00::2")
	vip4    = netip.MustParseAddr("192.0.2.10")
	vip6    = netip.MustParseAddr("2001:db8:1::10")
	router4 = netip.MustParseAddr("198.51.100.1")
	router6 = netip.MustParseAddr("2001:db8:ff::1")
	client4 = netip.MustParseAddr("203.0.113.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")

	selfMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	peerMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	routerMC = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
	bcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcastMAC = [6]byte{0x33, 0x33, 0, 0, 0, 0x01} // IPv6 multicast MAC
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testView() *View {
	set := peers.NewSet([]peers.Peer{peers.PeerAt(peerA4), peers.PeerAt(peerB4), peers.PeerAt(peerA6)})
	return NewView([]netip.Addr{self4, self6}, [][6]byte{selfMAC}, set, [][6]byte{peerMAC})
}

// fromRouter is the wire's normal case: the router's frame, unicast to us.
var fromRouter = Origin{SrcMAC: routerMC, DstMAC: selfMAC, HasMAC: true}

// msg4 is "router4 told vip4 that its packet to client4:dport was too big".
func msg4(dport uint16, mtu uint32) *ptb.Message {
	return &ptb.Message{
		Family: 4, Src: router4, Dst: vip4, HopLimit: 60, MTU: mtu,
		Inner: ptb.Flow{Src: vip4, Dst: client4, Proto: 6, SrcPort: 443, DstPort: dport},
	}
}

func msg6(dport uint16, mtu uint32) *ptb.Message {
	return &ptb.Message{
		Family: 6, Src: router6, Dst: vip6, HopLimit: 60, MTU: mtu,
		Inner: ptb.Flow{Src: vip6, Dst: client6, Proto: 6, SrcPort: 443, DstPort: dport},
	}
}

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func want(t *testing.T, got, exp drop.Reason, what string) {
	t.Helper()
	if got != exp {
		t.Errorf("%s: got %v, want %v", what, got, exp)
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func itoa(i int) string { return strconv.Itoa(i) }
func nan() float64      { return math.NaN() }
func inf() float64      { return math.Inf(1) }
