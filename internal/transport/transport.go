// Package transport delivers a validated PTB message to peers. Each
// implementation keeps one long-lived socket and never opens one per packet.
//
//   - l2:        the original IP packet, unchanged, unicast to each peer's MAC
//   - broadcast: the original IP packet once, to ff:ff:ff:ff:ff:ff
//   - routed:    the ICMP message in a new IP header from us to each peer
package transport

import (
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// Sender relays one message to peers.
type Sender interface {
	// Name is the transport's name as used by --transport and in metrics.
	Name() string
	// Send relays m to the peers in to (all of m's family). It returns the
	// number of frames handed to the kernel and reports each peer it could
	// not send to through onErr (which may be nil). It must not retain m.
	Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int
	// Close releases the socket(s).
	Close() error
}

// MACSource is implemented by transports that know peers' MAC addresses
// (l2). The policy uses them to recognise a relayed copy by its sender.
type MACSource interface {
	PeerMACs() [][6]byte
}
