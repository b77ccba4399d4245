package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// How the view keeper paces itself.
const (
	viewRefresh = time.Second // own addresses, peer MACs
	// viewFastPoll is the first re-look after a change while some peer is
	// still unresolved; it doubles up to viewRefresh, so a peer that never
	// answers costs one look a second, not twenty.
	viewFastPoll = 50 * time.Millisecond
	// startGrace is how long readiness waits at start for peers to
	// resolve, so that the loop guard is armed for every peer that answers.
	// After it, a peer nobody answers for is a detail, never a failure: one
	// dead node must not make every pod unready.
	startGrace = 5 * time.Second
)

// viewKeeper rebuilds the policy's view (who is who) whenever the peers or
// uplinks change, and every viewRefresh for our own addresses and the
// peers' MACs, and keeps the peer states that readiness and metrics show.
type viewKeeper struct {
	kind     transport.Kind
	sender   transport.Sender
	registry *peers.Registry
	uplinks  func() uplinks
	identity func(uplinks) (identity, error)
	publish  func(*policy.View)
	m        *metrics.Metrics
	log      *slog.Logger
	now      func() time.Time

	kick chan struct{}

	mu      sync.Mutex
	started time.Time
	built   bool
	status  peerStatus
}

// peerStatus is what readiness says about the peers.
type peerStatus struct {
	total      int
	unresolved int                   // still being resolved (l2)
	states     []transport.PeerState // per peer, from the transport (nil: all reachable)
	familyGap  string                // routed: peers a family cannot reach
}

func newViewKeeper(k transport.Kind, s transport.Sender, r *peers.Registry, up func() uplinks,
	publish func(*policy.View), m *metrics.Metrics, log *slog.Logger) *viewKeeper {
	return &viewKeeper{
		kind: k, sender: s, registry: r, uplinks: up, identity: localIdentity, publish: publish,
		m: m, log: log, now: time.Now, kick: make(chan struct{}, 1),
	}
}

// Kick asks for a rebuild soon (coalesced).
func (v *viewKeeper) Kick() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

func (v *viewKeeper) Run(ctx context.Context) error {
	v.mu.Lock()
	v.started = v.now()
	v.mu.Unlock()
	var told *peers.Set
	poll := viewFastPoll
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-v.registry.Changed():
			poll = viewFastPoll
		case <-v.kick:
			told, poll = nil, viewFastPoll // a new transport has not been told the peers
		case <-v.sender.StateChanged(): // a MAC learned or lost: rebuild at once
		case <-timer.C:
		}
		set := v.registry.Snapshot()
		if set != told {
			// l2 resolves MACs ahead of the first relay, and the loop guard
			// knows a peer's copies by its MAC from the start.
			v.sender.SetPeers(set.All())
			told = set
		}
		wait := viewRefresh
		if v.rebuild(set) {
			wait, poll = poll, min(2*poll, viewRefresh)
		}
		timer.Reset(wait)
	}
}

// rebuild publishes a fresh view and updates the peer states. It reports
// whether some peer is still being resolved (worth looking again soon).
func (v *viewKeeper) rebuild(set *peers.Set) bool {
	up := v.uplinks()
	self, err := v.identity(up)
	if err != nil {
		v.log.Warn("reading own addresses", "err", err)
	}
	// States before PeerMACs: if nothing was unresolved then, the MACs
	// read next are complete and the view built from them is armed.
	states := v.sender.PeerStates()
	v.publish(policy.NewView(self.addrs, self.macs, set, v.sender.PeerMACs()).CarryAnyFamily(v.kind.AnyFamily))
	st := peerStatus{total: set.Len(), states: states, familyGap: familyGap(v.kind, set)}
	counts := transport.CountStates(states)
	if states == nil {
		counts[transport.StateResolved.String()] = set.Len()
	}
	st.unresolved = counts[transport.StateUnresolved.String()]
	v.mu.Lock()
	gapWas := v.status.familyGap
	v.built = true
	v.status = st
	v.mu.Unlock()
	if st.familyGap != gapWas && st.familyGap != "" {
		v.log.Warn("some peers cannot get every family", "detail", st.familyGap)
	}
	for state, n := range counts {
		v.m.PeerStates.WithLabelValues(state).Set(float64(n))
	}
	for source, n := range v.registry.Counts() {
		v.m.Peers.WithLabelValues(source).Set(float64(n))
	}
	v.m.PeersTotal.Set(float64(set.Len()))
	return st.unresolved > 0
}

// familyGap says which peers the transport cannot reach with one family:
// only routed needs an address of the message's family.
func familyGap(k transport.Kind, set *peers.Set) string {
	if k.AnyFamily || set.Len() == 0 {
		return ""
	}
	var gaps []string
	for _, f := range []uint8{4, 6} {
		if n := set.Len() - len(set.Family(f)); n > 0 {
			gaps = append(gaps, fmt.Sprintf("%d of %d peers have no IPv%d address: %s cannot relay IPv%d messages to them", n, set.Len(), f, k.Name, f))
		}
	}
	return strings.Join(gaps, "; ")
}

// Ready fails only until the first view is built and, during the start
// grace, while peers are still being resolved.
func (v *viewKeeper) Ready() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.built {
		return errors.New("peer view not built yet")
	}
	if n := v.status.unresolved; n > 0 && v.now().Sub(v.started) < startGrace {
		return fmt.Errorf("resolving %d peer(s) (start grace %v)", n, startGrace)
	}
	return nil
}

// Detail is the readiness line about peers.
func (v *viewKeeper) Detail() string {
	v.mu.Lock()
	st := v.status
	v.mu.Unlock()
	if st.total == 0 {
		return "no peers known: nothing to relay to"
	}
	s := fmt.Sprintf("%d peers", st.total)
	if st.states != nil {
		s += ": " + transport.SummarizeStates(st.states, 10)
	}
	if st.familyGap != "" {
		s += "; " + st.familyGap
	}
	return s
}
