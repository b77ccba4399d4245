// Package checksum is the Internet checksum (RFC 1071) the parser verifies
// and the transports write: one implementation for both. It is pure and
// does not allocate.
package checksum

import (
	"encoding/binary"
	"net/netip"
)

// Partial adds b to sum as big-endian words (RFC 1071), unfolded. Sums of
// pieces that start at even offsets add up to the sum of the whole; an odd
// final byte is padded with zero, so only the last piece may be odd.
func Partial(b []byte, sum uint64) uint64 {
	// Summing 32-bit words into 64 bits is the same one's complement sum as
	// RFC 1071's 16-bit loop (2^16 = 1 mod 0xffff) at half the iterations,
	// and cannot overflow for any packet that fits in memory.
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
		sum += uint64(b[0]) << 8
	}
	return sum
}

// Fold folds a partial sum to 16 bits and complements it.
func Fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// Checksum is the Internet checksum of b folded onto initial (a partial sum
// such as a pseudo-header's). To compute a checksum, zero its field in b
// first; to verify one, checksum b as received: a correct message gives 0.
func Checksum(b []byte, initial uint64) uint16 { return Fold(Partial(b, initial)) }

// Pseudo6 is the partial sum of the IPv6 pseudo-header (RFC 8200 section
// 8.1) for an upper-layer message of length bytes and protocol next.
func Pseudo6(src, dst netip.Addr, length uint32, next uint8) uint64 {
	s, d := src.As16(), dst.As16()
	sum := Partial(s[:], 0)
	sum = Partial(d[:], sum)
	// Upper-layer length is 32 bits in the pseudo-header: add both halves.
	return sum + uint64(length>>16) + uint64(length&0xffff) + uint64(next)
}

// ICMPv6 is the ICMPv6 checksum (RFC 4443 section 2.3) of msg sent from src
// to dst. Like Checksum it computes (checksum field zeroed) or verifies (0
// if good).
func ICMPv6(src, dst netip.Addr, msg []byte) uint16 {
	return Checksum(msg, Pseudo6(src, dst, uint32(len(msg)), 58))
}
