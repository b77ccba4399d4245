package ptb

import (
	"encoding/binary"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// maxExtHeaders bounds the extension-header walk. RFC 8200 section 4.1's
// recommended order has at most four of the kinds we skip (hop-by-hop,
// destination options, routing, destination options) plus a fragment header;
// more is an attack on the parser, not a real packet.
const maxExtHeaders = 8

// parse6 validates the outer IPv6 header (RFC 8200) and its extension
// headers, and hands the ICMPv6 message on. pkt[0]>>4 is 6.
func parse6(pkt []byte, lim *Limits, m *Message) drop.Reason {
	m.Family = 6
	if len(pkt) < 40 {
		return drop.Truncated
	}
	// A payload length of 0 would announce a jumbogram (RFC 2675); a PTB is
	// never one (RFC 4443 section 2.4 (c) caps it at 1280 bytes), and the
	// walk below then finds no room for ICMPv6 and says Truncated.
	total := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	if total > len(pkt) {
		return drop.BadIPHeader // the length lies, as IPv4's total length can
	}
	pkt = pkt[:total] // drop link-layer padding
	m.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
	m.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	m.HopLimit = pkt[7]
	m.Packet = pkt
	next, off, _, r := walk6(pkt, false)
	if r != drop.None {
		return r
	}
	if next != protoICMPv6 {
		return drop.NotICMP
	}
	return parseICMP6(pkt[off:], lim, m)
}

// parseInner6 decodes the quoted IPv6 packet q (at least one byte, version 6
// already checked) into m.Inner, walking its extension headers like the
// outer ones. The payload length must exceed the MTU (the quote itself is
// usually cut, so it is not compared with the bytes present).
func parseInner6(q []byte, m *Message) drop.Reason {
	if len(q) < 40 {
		return drop.InnerTruncated
	}
	// As for IPv4: the refused packet (payload length + 40) must not have
	// fitted in the MTU. A payload length of 0 (a jumbogram) counts as 40.
	if m.MTU >= 40+uint32(binary.BigEndian.Uint16(q[4:])) {
		return drop.MTUNotSmaller
	}
	f := &m.Inner
	f.Src = netip.AddrFrom16([16]byte(q[8:24]))
	f.Dst = netip.AddrFrom16([16]byte(q[24:40]))
	next, off, hasL4, r := walk6(q, true)
	if r != drop.None {
		return r
	}
	f.Proto = next
	return quotedL4(f, q[off:], hasL4, 6)
}

// walk6 follows the extension headers of the IPv6 packet b (header at least
// 40 bytes) and returns the upper-layer protocol and its offset in b.
//
// Hop-by-hop (only first, RFC 8200 section 4.3), routing and destination
// options headers are skipped by their length. Any other next header ends
// the walk: it is the upper layer, or something the caller will refuse.
//
// A fragment header (RFC 8200 section 4.5) in the outer packet is Fragment.
// In a quoted packet it is normal (we may have fragmented after an earlier
// PTB): a first fragment is walked through; a later one has no transport
// header, so hasL4 is false and the fragment's next header is returned.
func walk6(b []byte, inner bool) (next uint8, off int, hasL4 bool, r drop.Reason) {
	short, bad := drop.Truncated, drop.BadIPHeader
	if inner {
		short, bad = drop.InnerTruncated, drop.InnerBadHeader
	}
	next, off = b[6], 40
	for n := 0; ; n++ {
		switch next {
		case protoHopByHop, protoRouting, protoDstOpts, protoFragment:
		default:
			return next, off, true, drop.None
		}
		if n == maxExtHeaders {
			return 0, 0, false, bad
		}
		if next == protoHopByHop && n != 0 {
			return 0, 0, false, bad
		}
		if next == protoFragment {
			if !inner {
				return 0, 0, false, drop.Fragment
			}
			if len(b) < off+8 {
				return 0, 0, false, short
			}
			first := binary.BigEndian.Uint16(b[off+2:])>>3 == 0
			next, off = b[off], off+8
			if !first {
				return next, off, false, drop.None
			}
			continue
		}
		if len(b) < off+2 {
			return 0, 0, false, short
		}
		end := off + (int(b[off+1])+1)*8 // Hdr Ext Len: 8-octet units after the first 8
		if len(b) < end {
			return 0, 0, false, short
		}
		next, off = b[off], end
	}
}
