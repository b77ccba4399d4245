package ptb_test

import (
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3's example: the sum of these words is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := ptb.Checksum(b, 0); got != ^uint16(0xddf2) {
		t.Errorf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	for n := range 64 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + 11)
		}
		if got, want := ptb.Checksum(b, 0x1234), ptbtest.Checksum(b, 0x1234); got != want {
			t.Errorf("len %d: Checksum = %#04x, reference %#04x", n, got, want)
		}
	}
}

func TestICMPv6Checksum(t *testing.T) {
	pkt := ptbtest.Build(spec6(6))
	if got := ptb.ICMPv6Checksum(router6, vip6, pkt[40:]); got != 0 {
		t.Errorf("verifying a good message = %#04x, want 0", got)
	}
	msg := append([]byte(nil), pkt[40:]...)
	msg[2], msg[3] = 0, 0
	if got, want := ptb.ICMPv6Checksum(router6, vip6, msg), ptbtest.ICMPv6Checksum(router6, vip6, msg); got != want {
		t.Errorf("ICMPv6Checksum = %#04x, reference %#04x", got, want)
	}
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xff}, uint32(0xffff))
	f.Add(ptbtest.Build(spec4(6)), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32) {
		initial &= 0xfffff // the reference sums in 32 bits
		if got, want := ptb.Checksum(b, initial), ptbtest.Checksum(b, initial); got != want {
			t.Fatalf("Checksum = %#04x, reference %#04x", got, want)
		}
		a := netip.AddrFrom16([16]byte(append(append([]byte(nil), b...), make([]byte, 16)...)[:16]))
		if got, want := ptb.ICMPv6Checksum(a, vip6, b), ptbtest.ICMPv6Checksum(a, vip6, b); got != want {
			t.Fatalf("ICMPv6Checksum = %#04x, reference %#04x", got, want)
		}
	})
}
