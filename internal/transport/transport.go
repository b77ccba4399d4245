// Package transport delivers a validated PTB message to peers. Each
// transport keeps long-lived sockets and never opens one per packet; all of
// them share one batched send loop (sendloop_linux.go) and differ only in
// how they frame a peer's copy:
//
//   - l2:        the original IP packet, unchanged, unicast to each peer's MAC
//   - broadcast: the original IP packet once per uplink, to ff:ff:ff:ff:ff:ff
//   - routed:    the ICMP message in a new IP header from us to each peer
//   - tunnel:    the original IP packet in a UDP datagram to each peer
//
// A transport is one file plus one Kind registered in kinds.go: the Kind
// says what it needs from the daemon and how its copies are recognised.
package transport

import (
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// Sender relays one message to peers.
type Sender interface {
	// Name is the transport's name as used by --transport and in metrics.
	Name() string
	// Send relays m to the peers in to. It returns the number of frames
	// handed to the kernel and reports each peer it could not send to
	// through onErr, by index into to (onErr may be nil). It must not
	// retain m or to.
	Send(m *ptb.Message, to []peers.Peer, onErr func(peer int, err error)) int
	// SendBatch relays each message of ms to its recipients as Send does,
	// with as few system calls as all their frames need. It sets each
	// message's Sent, returns the frames handed to the kernel in all, and
	// reports each peer it could not send a message to through onErr, by
	// index into ms and into that message's To (onErr may be nil). It must
	// not retain ms.
	SendBatch(ms []Outgoing, onErr func(msg, peer int, err error)) int
	// SetPeers tells the transport the current peers ahead of Send, so it
	// can prepare per-peer state (l2: resolve MACs). The slice is copied.
	SetPeers(ps []peers.Peer)
	// PeerMACs lists the MACs peers' copies are sent from (l2), so the
	// loop guard recognises them; nil for transports that do not know.
	PeerMACs() [][6]byte
	// PeerStates says, per peer node, whether the transport can reach it
	// and why not (l2); nil when it keeps no per-peer state.
	PeerStates() []PeerState
	// StateChanged is signalled after a peer's state changed (nil: never).
	StateChanged() <-chan struct{}
	// Close releases the sockets.
	Close() error
}

// Outgoing is one message of a SendBatch and, once sent, what became of it.
type Outgoing struct {
	M    *ptb.Message
	To   []peers.Peer
	Sent int // set by SendBatch: frames of M handed to the kernel
}

// stateless is embedded by transports that keep no per-peer state.
type stateless struct{}

func (stateless) SetPeers([]peers.Peer)         {}
func (stateless) PeerMACs() [][6]byte           { return nil }
func (stateless) PeerStates() []PeerState       { return nil }
func (stateless) StateChanged() <-chan struct{} { return nil }

func report(onErr func(int, error), i int, err error) {
	if onErr != nil {
		onErr(i, err)
	}
}

func reportAll(onErr func(int, error), n int, err error) {
	for i := 0; i < n; i++ {
		report(onErr, i, err)
	}
}
