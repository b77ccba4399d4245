package ptb_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// Documentation addresses (RFC 5737, RFC 3849).
var (
	router4 = netip.MustParseAddr("192.0.2.1")
	vip4    = netip.MustParseAddr("198.51.100.10")
	client4 = netip.MustParseAddr("203.0.113.7")
	router6 = netip.MustParseAddr("2001:db8::1")
	vip6    = netip.MustParseAddr("2001:db8:1::10")
	client6 = netip.MustParseAddr("2001:db8:2::7")
)

func spec4(proto uint8) ptbtest.Spec {
	return ptbtest.Spec{Router: router4, VIP: vip4, Client: client4, MTU: 1400,
		Proto: proto, SrcPort: 443, DstPort: 51000, HopLimit: 61}
}

func spec6(proto uint8) ptbtest.Spec {
	return ptbtest.Spec{Router: router6, VIP: vip6, Client: client6, MTU: 1400,
		Proto: proto, SrcPort: 443, DstPort: 51000, HopLimit: 61}
}

// The fixers below recompute checksums with ptbtest's implementation, so the
// tests do not trust the parser's own Checksum.

// fixHdr4 recomputes the outer IPv4 header checksum.
func fixHdr4(b []byte) []byte {
	ihl := int(b[0]&0x0f) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:ihl], 0))
	return b
}

// fix4 recomputes both IPv4 checksums after an edit that keeps lengths sane.
func fix4(b []byte) []byte {
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	icmp := b[ihl:total]
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], ptbtest.Checksum(icmp, 0))
	return fixHdr4(b)
}

// fix6 recomputes the ICMPv6 checksum of the message starting at off.
func fix6(b []byte, off int) []byte {
	icmp := b[off : 40+int(binary.BigEndian.Uint16(b[4:]))]
	icmp[2], icmp[3] = 0, 0
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	binary.BigEndian.PutUint16(icmp[2:], ptbtest.ICMPv6Checksum(src, dst, icmp))
	return b
}

// insert returns b with data inserted at i.
func insert(b []byte, i int, data ...byte) []byte {
	out := make([]byte, 0, len(b)+len(data))
	out = append(out, b[:i]...)
	out = append(out, data...)
	return append(out, b[i:]...)
}

func addTotal4(b []byte, n int) {
	binary.BigEndian.PutUint16(b[2:], uint16(int(binary.BigEndian.Uint16(b[2:]))+n))
}

func addPayload6(b []byte, n int) {
	binary.BigEndian.PutUint16(b[4:], uint16(int(binary.BigEndian.Uint16(b[4:]))+n))
}

// cut4 keeps n bytes of the quoted packet (which starts at 28) and fixes lengths.
func cut4(b []byte, n int) []byte {
	b = b[:28+n]
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return fix4(b)
}

// cut6 keeps n bytes of the quoted packet (which starts at 48).
func cut6(b []byte, n int) []byte {
	b = b[:48+n]
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return fix6(b, 40)
}

// grow4 appends n bytes to the quoted packet, as routers that quote more do.
func grow4(b []byte, n int) []byte {
	b = append(b, make([]byte, n)...)
	addTotal4(b, n)
	return fix4(b)
}

func grow6(b []byte, n int) []byte {
	b = append(b, make([]byte, n)...)
	addPayload6(b, n)
	return fix6(b, 40)
}

// checkInvariants holds for every successful Parse, whatever the input.
func checkInvariants(t *testing.T, pkt []byte, lim ptb.Limits, m *ptb.Message) {
	t.Helper()
	fam := pkt[0] >> 4
	if m.Family != fam {
		t.Fatalf("Family = %d, packet version %d", m.Family, fam)
	}
	is4 := fam == 4
	for _, a := range []netip.Addr{m.Src, m.Dst, m.Inner.Src, m.Inner.Dst} {
		if a.Is4() != is4 || !a.IsValid() {
			t.Fatalf("address %v does not match family %d", a, fam)
		}
	}
	lo, hi := lim.MinMTU6, lim.MaxMTU6
	if is4 {
		lo, hi = lim.MinMTU4, lim.MaxMTU4
	}
	if m.MTU < lo || m.MTU > hi {
		t.Fatalf("MTU %d outside %d..%d", m.MTU, lo, hi)
	}
	if len(m.Packet) == 0 || len(m.Packet) > len(pkt) || &m.Packet[0] != &pkt[0] {
		t.Fatalf("Packet is not a prefix of the input")
	}
	n, k := len(m.Packet), len(m.ICMP)
	if k < 9 || k > n || &m.ICMP[k-1] != &m.Packet[n-1] {
		t.Fatalf("ICMP (%d bytes) is not a suffix of Packet (%d bytes) with a quote", k, n)
	}
	if is4 {
		if ptbtest.Checksum(m.ICMP, 0) != 0 || ptbtest.Checksum(m.Packet[:n-k], 0) != 0 {
			t.Fatalf("accepted a bad IPv4 checksum")
		}
		if m.ICMP[0] != 3 || m.ICMP[1] != 4 {
			t.Fatalf("accepted ICMPv4 %d/%d", m.ICMP[0], m.ICMP[1])
		}
	} else {
		if ptbtest.ICMPv6Checksum(m.Src, m.Dst, m.ICMP) != 0 {
			t.Fatalf("accepted a bad ICMPv6 checksum")
		}
		if m.ICMP[0] != 2 || m.ICMP[1] != 0 {
			t.Fatalf("accepted ICMPv6 %d/%d", m.ICMP[0], m.ICMP[1])
		}
	}
	switch m.Inner.Proto {
	case 6, 17, 132, 136:
	default:
		if m.Inner.SrcPort != 0 || m.Inner.DstPort != 0 {
			t.Fatalf("ports %d/%d for protocol %d", m.Inner.SrcPort, m.Inner.DstPort, m.Inner.Proto)
		}
	}
	// The trimmed packet must parse the same: padding cannot change the verdict.
	var again ptb.Message
	if r := ptb.Parse(m.Packet, lim, &again); r != drop.None || again.Inner != m.Inner || again.MTU != m.MTU {
		t.Fatalf("trimmed packet parses differently: %v %+v", r, again.Inner)
	}
}
