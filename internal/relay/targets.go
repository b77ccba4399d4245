package relay

import (
	"net/netip"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// SetFanout swaps in the table of which nodes can own which Service's
// flows (Kubernetes). nil, the default, relays every message to every
// peer of its family, as the static --peers mode always does.
func (r *Relay) SetFanout(t *fanout.Table) { r.table.Store(t) }

// fanout returns the peers m goes to: the family's peers whose node can own
// the flow m quotes, or all of them. It allocates only when the peer set
// grew past what the target buffer held.
func (r *Relay) fanout(b *book, m *ptb.Message) []peers.Peer {
	all := b.set.Family(m.Family)
	r.send = sendState{book: b, f: famIndex(m.Family)}
	nodes, every := r.table.Load().Owners(m.Inner.Src, m.Inner.SrcPort, m.Inner.Proto)
	if every {
		return all
	}
	if cap(r.targets) < len(all) {
		r.targets = make([]peers.Peer, 0, len(all))
		r.targetIdx = make([]int32, 0, len(all))
	}
	r.targets, r.targetIdx = r.targets[:0], r.targetIdx[:0]
	for _, n := range nodes {
		r.targets, r.targetIdx = b.appendNamed(r.targets, r.targetIdx, m.Family, n)
	}
	r.send.idx = r.targetIdx
	return r.targets
}

// frames is what relaying to `to` costs of the frame budget.
func (r *Relay) frames(to []peers.Peer) int {
	if r.oneFrame && len(to) > 0 {
		return 1
	}
	return len(to)
}

// sendState follows one Send for onErr: which peers it was given and how
// they map to the book's numbering.
type sendState struct {
	book   *book
	f      int
	to     []peers.Peer
	idx    []int32   // idx[i] is to[i]'s index in its family; nil: i itself
	cursor int       // where the next failure is looked for first
	now    time.Time // the packet's time, for the log limiter: no clock read per failure
}

// lookAhead bounds the scan from the cursor: transports report failures in
// the order of the peers they were given, so the next failed peer is
// almost always at the cursor; a report out of order costs a map lookup,
// never a scan of the set.
const lookAhead = 8

// countSendError counts a failed peer under its node name in O(1).
func (r *Relay) countSendError(addr netip.Addr) {
	s := &r.send
	if s.book == nil {
		return
	}
	f, i := s.f, -1
	for j := s.cursor; j < min(s.cursor+lookAhead, len(s.to)); j++ {
		if s.to[j].Addr == addr {
			s.cursor, i = j+1, j
			if s.idx != nil {
				i = int(s.idx[j])
			}
			break
		}
	}
	if i < 0 {
		sl, ok := s.book.byAddr[addr]
		if !ok {
			r.metrics.SendErrors.WithLabelValues(addr.String()).Inc()
			return
		}
		f, i = int(sl.f), int(sl.i)
	}
	c := &s.book.errs[f][i]
	if *c == nil {
		*c = r.metrics.SendErrors.WithLabelValues(s.book.set.Family([]uint8{4, 6}[f])[i].Name)
	}
	(*c).Inc()
}
