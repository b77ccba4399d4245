package ptb

import (
	"github.com/go-pmtud/go-pmtud/internal/checksum"

	"encoding/binary"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// parseICMP4 validates an ICMPv4 destination-unreachable, fragmentation
// needed and DF set message (RFC 792, type 3 code 4) with the next-hop MTU
// of RFC 1191 section 4 in its second word, then its quoted packet.
func parseICMP4(icmp []byte, lim *Limits, m *Message) drop.Reason {
	if len(icmp) < 8 {
		return drop.Truncated
	}
	// Checksum first: a corrupted type byte is corruption, not another type.
	if checksum.Checksum(icmp, 0) != 0 {
		return drop.BadChecksum
	}
	if icmp[0] != 3 || icmp[1] != 4 {
		return drop.NotPTB
	}
	m.ICMP = icmp
	m.MTU = uint32(binary.BigEndian.Uint16(icmp[6:]))
	if !inRange(m.MTU, lim.MinMTU4, lim.MaxMTU4) {
		return drop.BadMTU
	}
	q := icmp[8:]
	if len(q) < 1 {
		return drop.InnerTruncated
	}
	if q[0]>>4 != 4 {
		return drop.InnerBadVersion
	}
	return parseInner4(q, m)
}

// isICMPv4Error reports whether ICMPv4 type t is an error message
// (RFC 1122 section 3.2.2): destination unreachable, source quench,
// redirect, time exceeded, parameter problem.
func isICMPv4Error(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}
