package ptb

import (
	"encoding/binary"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// IANA protocol numbers the parser cares about.
const (
	protoHopByHop = 0
	protoICMPv4   = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoICMPv6   = 58
	protoDstOpts  = 60
	protoSCTP     = 132
	protoUDPLite  = 136
)

// Parse validates pkt, a whole IP packet starting at its IP header (as NFLOG
// delivers it), as an ICMPv4 fragmentation-needed (RFC 792, RFC 1191) or
// ICMPv6 packet-too-big (RFC 4443, RFC 8201) message with an MTU within lim,
// and decodes it into m. It returns drop.None on success, otherwise the
// first reason it found (one of the parse reasons of package drop).
//
// What it checks: the outer IP header (version, lengths, IPv4 header
// checksum, no fragments; IPv4 options and IPv6 hop-by-hop, routing and
// destination-options headers are skipped), the ICMP checksum, type, code
// and MTU, and that the quoted packet has an IP header of the same family
// and, for TCP, UDP, SCTP and UDP-Lite, its ports. A quoted ICMP error is
// refused: RFC 1122 section 3.2.2 and RFC 4443 section 2.4 (e.1) forbid
// sending errors about errors, so such a message is forged or broken. The
// length the quoted header states must make sense: a quoted IPv4 total
// length shorter than the quoted header is drop.InnerBadLength, and the MTU
// must be smaller than the quoted packet (IPv4 total length, IPv6 payload
// length + 40), since a router complains only about a packet that did not
// fit (drop.MTUNotSmaller).
//
// What it does not check, on purpose: the quoted packet's checksums, and
// whether its stated length matches the bytes quoted (routers quote a
// prefix: RFC 792 asks for 64 bits of payload, RFC 4443 as much as fits in
// 1280 bytes), and whether the quoted source is the outer destination (that
// is policy, drop.ForeignInner).
//
// Trailing bytes beyond the stated IP length (link-layer padding) are
// ignored; m.Packet is trimmed to the stated length. m's slices alias pkt.
// On failure m holds the fields decoded before the failing check (useful in
// logs: the outer addresses once the IP header was valid, the MTU once read)
// and zero elsewhere.
//
// Parse must not allocate: it runs once per captured packet.
func Parse(pkt []byte, lim Limits, m *Message) drop.Reason {
	*m = Message{}
	if len(pkt) == 0 {
		return drop.Truncated
	}
	switch pkt[0] >> 4 {
	case 4:
		return parse4(pkt, &lim, m)
	case 6:
		return parse6(pkt, &lim, m)
	}
	return drop.BadIPVersion
}

// quotedL4 decodes the quoted packet's transport header l4 into f, whose
// Proto is set. hasL4 is false when the quote is a non-first fragment: its
// payload does not start with a transport header, so there are no ports.
func quotedL4(f *Flow, l4 []byte, hasL4 bool, family uint8) drop.Reason {
	if !hasL4 {
		return drop.None
	}
	switch f.Proto {
	case protoTCP, protoUDP, protoSCTP, protoUDPLite:
		// All four start with source and destination port.
		if len(l4) < 4 {
			return drop.InnerTruncated
		}
		f.SrcPort = binary.BigEndian.Uint16(l4)
		f.DstPort = binary.BigEndian.Uint16(l4[2:])
	case protoICMPv4:
		if family != 4 {
			break
		}
		if len(l4) < 1 {
			return drop.InnerTruncated // cannot tell whether it was an error
		}
		if isICMPv4Error(l4[0]) {
			return drop.InnerICMPError
		}
	case protoICMPv6:
		if family != 6 {
			break
		}
		if len(l4) < 1 {
			return drop.InnerTruncated
		}
		if l4[0] < 128 { // RFC 4443 section 2.1: types 0-127 are errors
			return drop.InnerICMPError
		}
	}
	return drop.None
}

func inRange(v, lo, hi uint32) bool { return v >= lo && v <= hi }
