package ptb

import (
	"encoding/binary"
	"net/netip"
)

// Checksum is the Internet checksum (RFC 1071) of b, folded onto initial
// (a partial sum such as a pseudo-header's). To compute a checksum, zero its
// field in b first; to verify one, checksum b as received: a correct message
// gives 0. It does not allocate.
func Checksum(b []byte, initial uint32) uint16 {
	// Summing 32-bit words into 64 bits is the same one's complement sum as
	// RFC 1071's 16-bit loop (2^16 = 1 mod 0xffff) at half the iterations,
	// and cannot overflow for any packet that fits in memory.
	sum := uint64(initial)
	for len(b) >= 16 {
		sum += uint64(binary.BigEndian.Uint32(b)) +
			uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) +
			uint64(binary.BigEndian.Uint32(b[12:]))
		b = b[16:]
	}
	for len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8 // odd length: pad with a zero byte (RFC 1071)
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ICMPv6Checksum is the ICMPv6 checksum (RFC 4443 section 2.3) of msg sent
// from src to dst, including the pseudo-header of RFC 8200 section 8.1.
// Like Checksum it computes (checksum field zeroed) or verifies (0 if good).
// It does not allocate.
func ICMPv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As16(), dst.As16()
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	// Upper-layer length is 32 bits in the pseudo-header: add both halves.
	n := uint32(len(msg))
	sum += n>>16 + n&0xffff + protoICMPv6
	return Checksum(msg, sum)
}
