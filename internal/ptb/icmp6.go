package ptb

import (
	"github.com/go-pmtud/go-pmtud/internal/checksum"

	"encoding/binary"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// parseICMP6 validates an ICMPv6 packet-too-big message (RFC 4443 section
// 3.2, type 2 code 0) with its 32-bit MTU, then its quoted packet. m.Src
// and m.Dst are set: the checksum covers them through the pseudo-header.
//
// If the outer packet carried a routing header, RFC 8200 section 8.1 wants
// the final destination in the pseudo-header; at the final destination that
// is the Destination Address we have, so a packet captured before it reached
// its last segment fails here as BadChecksum, which is right: it is not ours.
func parseICMP6(icmp []byte, lim *Limits, m *Message) drop.Reason {
	if len(icmp) < 8 {
		return drop.Truncated
	}
	if checksum.ICMPv6(m.Src, m.Dst, icmp) != 0 {
		return drop.BadChecksum
	}
	if icmp[0] != 2 || icmp[1] != 0 {
		return drop.NotPTB
	}
	m.ICMP = icmp
	m.MTU = binary.BigEndian.Uint32(icmp[4:])
	if !inRange(m.MTU, lim.MinMTU6, lim.MaxMTU6) {
		return drop.BadMTU
	}
	q := icmp[8:]
	if len(q) < 1 {
		return drop.InnerTruncated
	}
	if q[0]>>4 != 6 {
		return drop.InnerBadVersion
	}
	return parseInner6(q, m)
}
