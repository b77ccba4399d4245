package daemon

import (
	"sync"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// reopenable is the transport the relay sends through. Link transports
// (l2, broadcast) bind AF_PACKET sockets to the uplinks' ifindexes; when
// the set of uplinks changes, or one is deleted and created again under
// the same name (a bond or VLAN rebuilt by the network manager), the daemon
// opens a fresh transport and swaps it in here; the relay keeps the same
// Sender.
type reopenable struct {
	mu  sync.RWMutex // Send holds it shared; a swap holds it briefly, exclusively
	cur transport.Sender
}

var _ transport.Sender = (*reopenable)(nil)

func (r *reopenable) get() transport.Sender {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur
}

func (r *reopenable) Name() string                      { return r.get().Name() }
func (r *reopenable) PeerMACs() [][6]byte               { return r.get().PeerMACs() }
func (r *reopenable) SetPeers(ps []peers.Peer)          { r.get().SetPeers(ps) }
func (r *reopenable) PeerStates() []transport.PeerState { return r.get().PeerStates() }
func (r *reopenable) StateChanged() <-chan struct{}     { return r.get().StateChanged() }

func (r *reopenable) Send(m *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	r.mu.RLock()
	n := r.cur.Send(m, to, onErr)
	r.mu.RUnlock()
	return n
}

func (r *reopenable) SendBatch(ms []transport.Outgoing, onErr func(int, int, error)) int {
	r.mu.RLock()
	n := r.cur.SendBatch(ms, onErr)
	r.mu.RUnlock()
	return n
}

// swap installs next and closes the transport it replaces, once no Send
// uses it any more.
func (r *reopenable) swap(next transport.Sender) error {
	r.mu.Lock()
	old := r.cur
	r.cur = next
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenable) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.Close()
}
