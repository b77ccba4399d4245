// Package drop names every reason go-pmtud has for not relaying a message.
//
// One typed enum is shared by the parser, the policy, the metrics and the
// logs, so every dropped packet is explained and counted the same way
// everywhere (the pattern MetalLB's speaker uses for its decisions).
package drop

// Reason says why a captured packet was not relayed. None means "relay it".
type Reason uint8

// The parser's reasons come first (the packet is not a well-formed PTB),
// then the policy's (well-formed, but we must not or need not relay it).
const (
	None Reason = iota

	// Parse: outer IP header.
	Truncated    // shorter than the headers it claims to carry
	BadIPVersion // outer IP version is neither 4 nor 6
	BadIPHeader  // IHL below 5, total/payload length that lies, bad IPv4 header checksum
	Fragment     // outer packet is a fragment: the ICMP message cannot be validated
	NotICMP      // outer protocol / next header is not ICMP for its family
	// Parse: ICMP header.
	BadChecksum // ICMP checksum does not verify
	NotPTB      // ICMP type/code is not frag-needed (v4 3/4) or packet-too-big (v6 2/0)
	BadMTU      // MTU outside the accepted range for its family
	// Parse: quoted inner packet.
	InnerTruncated  // quoted packet too short for its IP header or its L4 ports
	InnerBadVersion // quoted packet's IP version differs from the outer family
	InnerBadHeader  // quoted IHL below 5, or similar nonsense
	InnerICMPError  // an error about an ICMP error: RFC 1122 forbids answering those
	InnerBadLength  // quoted IPv4 total length shorter than the quoted header itself
	MTUNotSmaller   // reported MTU not smaller than the quoted packet: it would have fitted

	// Policy.
	FromSelf          // sent by this node (one of our own addresses)
	FromPeer          // sent by a peer (peer address or peer MAC): a relayed copy
	L2Broadcast       // arrived as an L2 broadcast/multicast: our broadcast transport's copy
	IgnoredNetwork    // router address is in --ignore-networks
	ForeignInner      // quoted source is not the message's destination: about somebody else
	NotRelayFor       // quoted source outside --relay-for
	PortNotListed     // quoted source port not in --ports
	Duplicate         // same router, inner flow and MTU seen within the duplicate window
	RateLimitedFlow   // per-flow (router + inner destination) limit exceeded
	RateLimitedSource // per-router limit exceeded
	RateLimitedGlobal // overall cap exceeded: bounds amplification
	NoPeers           // nobody to relay to
	// NoPeersOfFamily: peers exist, but none has an address of the
	// message's family and the transport cannot carry it to another
	// (routed re-addresses the message, so it cannot change family).
	NoPeersOfFamily
	// The message's fan-out (frames it would cost) does not fit the node's
	// frame budget: dropped whole, never sent to some peers only.
	RateLimitedFrames

	numReasons
)

var names = [numReasons]string{
	None:              "none",
	Truncated:         "truncated",
	BadIPVersion:      "bad_ip_version",
	BadIPHeader:       "bad_ip_header",
	Fragment:          "fragment",
	NotICMP:           "not_icmp",
	BadChecksum:       "bad_checksum",
	NotPTB:            "not_ptb",
	BadMTU:            "bad_mtu",
	InnerTruncated:    "inner_truncated",
	InnerBadVersion:   "inner_bad_version",
	InnerBadHeader:    "inner_bad_header",
	InnerICMPError:    "inner_icmp_error",
	InnerBadLength:    "inner_bad_length",
	MTUNotSmaller:     "mtu_not_smaller",
	FromSelf:          "from_self",
	FromPeer:          "from_peer",
	L2Broadcast:       "l2_broadcast",
	IgnoredNetwork:    "ignored_network",
	ForeignInner:      "foreign_inner",
	NotRelayFor:       "not_relay_for",
	PortNotListed:     "port_not_listed",
	Duplicate:         "duplicate",
	RateLimitedFlow:   "rate_limited_flow",
	RateLimitedSource: "rate_limited_source",
	RateLimitedGlobal: "rate_limited_global",
	NoPeers:           "no_peers",
	NoPeersOfFamily:   "no_peers_of_family",
	RateLimitedFrames: "rate_limited_frames",
}

// String returns the reason's metric label value.
func (r Reason) String() string {
	if r < numReasons {
		return names[r]
	}
	return "unknown"
}

// Malformed reports whether the parser rejected the packet (as opposed to the policy).
func (r Reason) Malformed() bool { return r >= Truncated && r <= MTUNotSmaller }

// All lists every reason except None, so metrics can be pre-registered
// (a series that exists at zero is easier to alert on than a missing one).
func All() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := Truncated; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}
