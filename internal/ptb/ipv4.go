package ptb

import (
	"github.com/go-pmtud/go-pmtud/internal/checksum"

	"encoding/binary"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// parse4 validates the outer IPv4 header (RFC 791) and hands the ICMP
// message on. pkt[0]>>4 is 4.
func parse4(pkt []byte, lim *Limits, m *Message) drop.Reason {
	m.Family = 4
	if len(pkt) < 20 {
		return drop.Truncated
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 {
		return drop.BadIPHeader
	}
	if len(pkt) < ihl {
		return drop.Truncated
	}
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if total < ihl || total > len(pkt) {
		return drop.BadIPHeader
	}
	if checksum.Checksum(pkt[:ihl], 0) != 0 || !options4OK(pkt[20:ihl]) {
		return drop.BadIPHeader
	}
	pkt = pkt[:total] // drop link-layer padding
	m.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
	m.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	m.HopLimit = pkt[8]
	m.Packet = pkt
	// MF set or a non-zero offset: only the reassembled message could be
	// checksummed, and the kernel reassembles before anyone should relay.
	if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
		return drop.Fragment
	}
	if pkt[9] != protoICMPv4 {
		return drop.NotICMP
	}
	return parseICMP4(pkt[ihl:], lim, m)
}

// parseInner4 decodes the quoted IPv4 packet q (at least one byte, version 4
// already checked) into m.Inner. Options are skipped by IHL. The stated
// total length must be plausible and larger than m.MTU; the checksum is not
// checked because the quote is usually cut short.
func parseInner4(q []byte, m *Message) drop.Reason {
	if len(q) < 20 {
		return drop.InnerTruncated
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 {
		return drop.InnerBadHeader
	}
	if len(q) < ihl {
		return drop.InnerTruncated
	}
	if !options4OK(q[20:ihl]) {
		return drop.InnerBadHeader
	}
	// The quote may be cut short, but the total length it states is the
	// packet the router refused: it cannot be shorter than its own header,
	// and an MTU it would have fitted in is no reason to refuse it.
	total := uint32(binary.BigEndian.Uint16(q[2:]))
	if total < uint32(ihl) {
		return drop.InnerBadLength
	}
	if m.MTU >= total {
		return drop.MTUNotSmaller
	}
	f := &m.Inner
	f.Src = netip.AddrFrom4([4]byte(q[12:16]))
	f.Dst = netip.AddrFrom4([4]byte(q[16:20]))
	f.Proto = q[9]
	// A non-first fragment's payload carries no transport header.
	first := binary.BigEndian.Uint16(q[6:])&0x1fff == 0
	return quotedL4(f, q[ihl:], first, 4)
}

// options4OK reports whether b is a well-formed IPv4 option list (RFC 791
// section 3.1): End of Option List (0) ends it, No Operation (1) is one
// byte, every other option carries a length byte of at least 2 that stays
// inside the header. The kernel checks the outer header's options itself
// (ip_options_compile) before netfilter; a quoted header is ours to check.
func options4OK(b []byte) bool {
	for i := 0; i < len(b); {
		switch b[i] {
		case 0:
			return true
		case 1:
			i++
		default:
			if i+1 >= len(b) {
				return false
			}
			n := int(b[i+1])
			if n < 2 || i+n > len(b) {
				return false
			}
			i += n
		}
	}
	return true
}
