//go:build linux

package safety_test

import (
	"encoding/binary"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// Packet builders for hand-made, possibly broken, PTBs. Checksums are
// right unless a case breaks them on purpose, so each case fails exactly
// the check it is about.

var (
	vip4    = netip.MustParseAddr(testnet.VIP4)
	vip6    = netip.MustParseAddr(testnet.VIP6)
	client4 = netip.MustParseAddr("203.0.113.5")
	client6 = netip.MustParseAddr("2001:db8:2::5")
)

// tcp is the start of a TCP header with the given ports.
func tcp(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	return b
}

// quote4 is a quoted IPv4 packet: a 20-byte header from src to dst (total
// length 9000, DF) followed by l4.
func quote4(src, dst netip.Addr, proto byte, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 9000)
	binary.BigEndian.PutUint16(b[6:], 0x4000)
	b[8], b[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b, 0))
	return append(b, l4...)
}

// quote6 is a quoted IPv6 packet from src to dst followed by l4.
func quote6(src, dst netip.Addr, next byte, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], 8960)
	b[6], b[7] = next, 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

// icmp4 is an ICMPv4 message with a correct checksum; mtu goes in the
// second word's low half (RFC 1191).
func icmp4(typ, code byte, mtu uint16, quote []byte) []byte {
	b := make([]byte, 8, 8+len(quote))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[6:], mtu)
	b = append(b, quote...)
	binary.BigEndian.PutUint16(b[2:], ptbtest.Checksum(b, 0))
	return b
}

// ip4 wraps payload in an IPv4 header from src to the VIP, with options
// (a multiple of 4 bytes), protocol ICMP and correct lengths and checksum.
func ip4(src netip.Addr, opts, payload []byte) []byte {
	ihl := 20 + len(opts)
	b := make([]byte, ihl, ihl+len(payload))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(payload)))
	b[8], b[9] = 64, 1
	s, d := src.As4(), vip4.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	binary.BigEndian.PutUint16(b[10:], ptbtest.Checksum(b[:ihl], 0))
	return append(b, payload...)
}

// icmp6 is an ICMPv6 message from src to the VIP with a correct checksum.
func icmp6(src netip.Addr, typ, code byte, mtu uint32, quote []byte) []byte {
	b := make([]byte, 8, 8+len(quote))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], mtu)
	b = append(b, quote...)
	binary.BigEndian.PutUint16(b[2:], ptbtest.ICMPv6Checksum(src, vip6, b))
	return b
}

// ip6 wraps payload in an IPv6 header from src to the VIP. ext is a chain
// of extension headers whose first next-header value is next; the last one
// must point at ICMPv6 (58) itself.
func ip6(src netip.Addr, next byte, ext, payload []byte) []byte {
	b := make([]byte, 40, 40+len(ext)+len(payload))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(payload)))
	b[6], b[7] = next, 64
	s, d := src.As16(), vip6.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	b = append(b, ext...)
	return append(b, payload...)
}

// good4 and good6 are valid PTBs from router src about the VIP's packet to
// the client, reporting mtu.
func good4(src netip.Addr, mtu uint16, dport uint16) []byte {
	return ip4(src, nil, icmp4(3, 4, mtu, quote4(vip4, client4, 6, tcp(443, dport))))
}

func good6(src netip.Addr, mtu uint32, dport uint16) []byte {
	return ip6(src, 58, nil, icmp6(src, 2, 0, mtu, quote6(vip6, client6, 6, tcp(443, dport))))
}
