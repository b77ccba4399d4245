// Package ptb parses and validates ICMPv4 "fragmentation needed" (RFC 792,
// RFC 1191) and ICMPv6 "packet too big" (RFC 4443, RFC 8201) messages as
// they arrive from the wire, including the quoted packet that caused them.
//
// It is pure: no sockets, no syscalls, no allocation on the hot path.
package ptb

import "net/netip"

// Flow is the quoted (inner) packet's identity: the packet we sent that was too big.
type Flow struct {
	Src, Dst         netip.Addr // Src is normally our VIP, Dst the remote client
	Proto            uint8      // IANA protocol number (6 TCP, 17 UDP, 132 SCTP, ...)
	SrcPort, DstPort uint16     // zero for protocols without ports
}

// Message is one parsed PTB. Its slices alias the buffer given to Parse.
type Message struct {
	Family   uint8      // 4 or 6
	Src, Dst netip.Addr // outer: the router that complained, and whom it told (the VIP)
	HopLimit uint8      // outer TTL / hop limit as received
	MTU      uint32     // next-hop MTU the router reported
	Inner    Flow

	Packet []byte // the whole IP packet, trimmed to its stated length
	ICMP   []byte // the ICMP message: header, MTU field and quoted packet
}
