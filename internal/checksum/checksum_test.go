package checksum_test

import (
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/checksum"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

var (
	router6 = netip.MustParseAddr("2001:db8::1")
	vip6    = netip.MustParseAddr("2001:db8:1::10")
)

func spec(router, vip, client netip.Addr) ptbtest.Spec {
	return ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, Proto: 6, SrcPort: 443, DstPort: 51000, HopLimit: 61}
}

func spec4(uint8) ptbtest.Spec {
	return spec(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.7"))
}

func spec6(uint8) ptbtest.Spec { return spec(router6, vip6, netip.MustParseAddr("2001:db8:2::7")) }

// TestPiecesAddUp: a sum taken in pieces at even offsets is the sum of the
// whole, which is what lets the transports sum a message body once and add
// each peer's header.
func TestPiecesAddUp(t *testing.T) {
	b := ptbtest.Build(spec6(6))
	for cut := 0; cut <= len(b); cut += 2 {
		if got, want := checksum.Fold(checksum.Partial(b[cut:], checksum.Partial(b[:cut], 0))), checksum.Checksum(b, 0); got != want {
			t.Fatalf("cut at %d: %#04x, whole %#04x", cut, got, want)
		}
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3's example: the sum of these words is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := checksum.Checksum(b, 0); got != ^uint16(0xddf2) {
		t.Errorf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	for n := range 64 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + 11)
		}
		if got, want := checksum.Checksum(b, 0x1234), ptbtest.Checksum(b, 0x1234); got != want {
			t.Errorf("len %d: Checksum = %#04x, reference %#04x", n, got, want)
		}
	}
}

func TestICMPv6Checksum(t *testing.T) {
	pkt := ptbtest.Build(spec6(6))
	if got := checksum.ICMPv6(router6, vip6, pkt[40:]); got != 0 {
		t.Errorf("verifying a good message = %#04x, want 0", got)
	}
	msg := append([]byte(nil), pkt[40:]...)
	msg[2], msg[3] = 0, 0
	if got, want := checksum.ICMPv6(router6, vip6, msg), ptbtest.ICMPv6Checksum(router6, vip6, msg); got != want {
		t.Errorf("ICMPv6Checksum = %#04x, reference %#04x", got, want)
	}
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xff}, uint32(0xffff))
	f.Add(ptbtest.Build(spec4(6)), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32) {
		initial &= 0xfffff // the reference sums in 32 bits
		if got, want := checksum.Checksum(b, uint64(initial)), ptbtest.Checksum(b, initial); got != want {
			t.Fatalf("Checksum = %#04x, reference %#04x", got, want)
		}
		a := netip.AddrFrom16([16]byte(append(append([]byte(nil), b...), make([]byte, 16)...)[:16]))
		if got, want := checksum.ICMPv6(a, vip6, b), ptbtest.ICMPv6Checksum(a, vip6, b); got != want {
			t.Fatalf("ICMPv6Checksum = %#04x, reference %#04x", got, want)
		}
	})
}
