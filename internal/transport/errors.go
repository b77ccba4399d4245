package transport

import "errors"

// Errors reported through Send's onErr. They are created once so that
// reporting does not allocate on the packet path.
var (
	// ErrNoMAC means l2 has no usable neighbour entry for the peer yet.
	// Resolution has been triggered; a later Send will succeed if the peer
	// answers ARP / neighbour solicitation.
	ErrNoMAC = errors.New("no MAC for peer")
	// ErrNotOnLink means the peer is routed via a gateway or another
	// interface, so an Ethernet frame on the configured interface cannot
	// reach it. Use the routed transport for such fabrics.
	ErrNotOnLink = errors.New("peer is not on-link")
	// ErrNotOnSegment means the peer's address resolves to a MAC that other
	// peers or the default gateway share: a router answers ARP / neighbour
	// discovery for it (proxy ARP), so the peer is not on this segment and
	// a frame to that MAC would reach the router, not the peer.
	ErrNotOnSegment = errors.New("peer is not on this segment (its MAC is shared with other peers or the gateway: proxy ARP)")
	// ErrFamily means the message's family has no socket or does not match
	// the peer's address family.
	ErrFamily = errors.New("address family not supported by this transport")
	// ErrBadMessage means the message is too short to relay.
	ErrBadMessage = errors.New("message too short to relay")
)
