// Package ptbtest builds well-formed ICMPv4 frag-needed and ICMPv6 packet-too-big
// packets, complete with IP header and checksums, for tests of every layer.
// Tests that want a malformed packet build a good one and break it.
package ptbtest

import (
	"encoding/binary"
	"net/netip"
)

// Spec describes the message: Router told VIP that its packet to Client was too big.
type Spec struct {
	Router   netip.Addr // outer source; its family picks IPv4 or IPv6
	VIP      netip.Addr // outer destination and quoted source
	Client   netip.Addr // quoted destination
	MTU      uint32     // reported next-hop MTU
	Proto    uint8      // quoted protocol; 0 means TCP
	SrcPort  uint16     // quoted source port (the VIP's service port)
	DstPort  uint16     // quoted destination port (the client's port)
	HopLimit uint8      // outer TTL / hop limit; 0 means 64
	InnerLen int        // quoted packet's stated total length; 0 means 9000
}

// Build returns the IP packet for s.
func Build(s Spec) []byte {
	if s.Proto == 0 {
		s.Proto = 6
	}
	if s.HopLimit == 0 {
		s.HopLimit = 64
	}
	if s.InnerLen == 0 {
		s.InnerLen = 9000
	}
	if s.Router.Unmap().Is4() {
		return build4(s)
	}
	return build6(s)
}

// l4 is a 20-byte TCP-like header quoting the ports (UDP and SCTP also start with the ports).
func l4(s Spec) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], s.SrcPort)
	binary.BigEndian.PutUint16(b[2:], s.DstPort)
	binary.BigEndian.PutUint32(b[4:], 0x01020304) // sequence number
	b[12] = 5 << 4
	b[13] = 0x10 // ACK
	return b
}

func build4(s Spec) []byte {
	inner := make([]byte, 20)
	ipv4Header(inner, s.InnerLen, s.Proto, 64, s.VIP, s.Client)
	inner = append(inner, l4(s)...)

	icmp := make([]byte, 8, 8+len(inner))
	icmp[0], icmp[1] = 3, 4
	binary.BigEndian.PutUint16(icmp[6:], uint16(s.MTU))
	icmp = append(icmp, inner...)
	binary.BigEndian.PutUint16(icmp[2:], Checksum(icmp, 0))

	pkt := make([]byte, 20, 20+len(icmp))
	ipv4Header(pkt, 20+len(icmp), 1, s.HopLimit, s.Router, s.VIP)
	return append(pkt, icmp...)
}

func ipv4Header(b []byte, total int, proto, ttl uint8, src, dst netip.Addr) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8], b[9] = ttl, proto
	s4, d4 := src.Unmap().As4(), dst.Unmap().As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:20], 0))
}

func build6(s Spec) []byte {
	inner := make([]byte, 40)
	ipv6Header(inner, s.InnerLen-40, s.Proto, 64, s.VIP, s.Client)
	inner = append(inner, l4(s)...)

	icmp := make([]byte, 8, 8+len(inner))
	icmp[0], icmp[1] = 2, 0
	binary.BigEndian.PutUint32(icmp[4:], s.MTU)
	icmp = append(icmp, inner...)
	binary.BigEndian.PutUint16(icmp[2:], ICMPv6Checksum(s.Router, s.VIP, icmp))

	pkt := make([]byte, 40, 40+len(icmp))
	ipv6Header(pkt, len(icmp), 58, s.HopLimit, s.Router, s.VIP)
	return append(pkt, icmp...)
}

func ipv6Header(b []byte, payload int, next, hops uint8, src, dst netip.Addr) {
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(payload))
	b[6], b[7] = next, hops
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
}

// Checksum is the Internet checksum (RFC 1071) of b, folded onto initial.
// The checksum field inside b must be zero when computing.
func Checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ICMPv6Checksum computes the ICMPv6 checksum of msg (checksum field zero)
// including the RFC 8200 pseudo-header.
func ICMPv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	s16, d16 := src.As16(), dst.As16()
	for i := 0; i < 16; i += 2 {
		sum += uint32(s16[i])<<8 | uint32(s16[i+1])
		sum += uint32(d16[i])<<8 | uint32(d16[i+1])
	}
	sum += uint32(len(msg)) + 58
	return Checksum(msg, sum)
}
