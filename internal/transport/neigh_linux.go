//go:build linux

package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	mnl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
)

// Active resolution.
//
// When a peer has no usable neighbour entry we do not craft ARP or neighbour
// solicitations. We ask the kernel to own the problem: an RTM_NEWNEIGH with
// NTF_EXT_MANAGED (Linux >= 5.16, `ip neigh replace ADDR dev IF managed`)
// makes the kernel resolve the entry at once and keep it resolved by
// re-probing it periodically, even when no traffic uses it. That also keeps
// the MAC fresh if a node is replaced, which a STALE entry would not.
// On older kernels the request fails and we fall back to NTF_USE, which
// triggers one resolution (the same as a packet sent to the address).
//
// Managed entries carry NeighProtocol (neighmsg.go). Those l2 created are
// deleted when their peer leaves the set and on Close; those an earlier run
// left behind (killed before it could clean up) are removed at the first
// SetPeers if their address is no longer a peer, and adopted otherwise.
//
// A peer nobody answers for is retried with a growing gap (backoff), not on
// every Send: the kernel's managed entry probes it meanwhile anyway.
//
// The netlink sockets were opened in the constructor's namespace, so
// everything here is namespace-safe from an ordinary goroutine.

// neighEntry is what l2 knows about one peer address: a MAC, or why there is none.
type neighEntry struct {
	name  string // the peer node's name
	mac   [6]byte
	state NeighState
	err   error // nil: mac is usable
}

// neighTable is an immutable snapshot read by Send without locking.
type neighTable struct {
	m    map[netip.Addr]neighEntry
	macs [][6]byte // usable peer MACs, deduplicated, for MACSource
}

// Retry timing for a peer without a MAC: the gap after attempt k is
// minResolveGap << (k-1), at most maxResolveGap. After failAfter attempts
// the peer is reported as StateFailed (it stays tracked and retried).
const (
	minResolveGap = time.Second
	maxResolveGap = 30 * time.Second
	failAfter     = 3
	// macGrace bounds how long a peer keeps its last MAC while its kernel
	// entry is missing or probed again; a FAILED entry ends it at once.
	macGrace = 5 * time.Second
)

func resolveGap(tries int) time.Duration {
	if tries < 1 {
		return 0
	}
	if tries > 6 { // 1s << 5 already exceeds the cap
		return maxResolveGap
	}
	return min(minResolveGap<<(tries-1), maxResolveGap)
}

// namedAddr is one address of a peer node.
type namedAddr struct {
	name string
	addr netip.Addr
}

// peerTrack is the refresher's state for one tracked address.
type peerTrack struct {
	name      string
	tries     int       // resolution attempts since the address last had a MAC
	next      time.Time // no attempt before this
	notOnLink error     // the last route check's verdict

	lastMAC [6]byte   // the MAC it last had, kept through a short loss (inGrace)
	hasLast bool      // lastMAC is set
	lostAt  time.Time // when the kernel entry stopped being usable
}

type neighbours struct {
	nl      *mnl.Conn       // neighbour messages (see neighmsg.go)
	ev      *mnl.Conn       // neighbour notifications (see neighevents_linux.go)
	h       *netlink.Handle // routes and links
	ifindex int
	iface   string
	log     *slog.Logger
	out     *atomic.Pointer[neighTable]

	wantc   chan netip.Addr // peers Send found missing; non-blocking
	events  chan neighEvent // kernel notifications for our interface
	peerc   chan struct{}   // SetPeers happened
	changed chan struct{}   // a peer's state changed; cap 1
	done    chan struct{}
	wg      sync.WaitGroup

	pmu     sync.Mutex
	pending []namedAddr // last SetPeers, nil if none pending

	attempts atomic.Int64 // resolution attempts, for tests

	// Owned by run.
	tracked  map[netip.Addr]*peerTrack
	created  map[netip.Addr]bool // managed entries we own (added or adopted)
	swept    bool                // leftovers of earlier runs were handled
	gateways map[[6]byte]bool    // MACs of the default routes' nexthops here
	states   map[string]NeighState
}

// startNeighbours starts the resolver of one uplink. changed (cap 1) is
// signalled after a peer's state changed; l2 shares one among its uplinks.
func startNeighbours(c, ev *mnl.Conn, h *netlink.Handle, ifindex int, iface string, every time.Duration, log *slog.Logger,
	out *atomic.Pointer[neighTable], changed chan struct{}) *neighbours {
	n := &neighbours{
		nl: c, ev: ev, h: h, ifindex: ifindex, iface: iface, log: log, out: out,
		wantc:    make(chan netip.Addr, 256),
		events:   make(chan neighEvent, 256),
		peerc:    make(chan struct{}, 1),
		changed:  changed,
		done:     make(chan struct{}),
		tracked:  map[netip.Addr]*peerTrack{},
		created:  map[netip.Addr]bool{},
		gateways: map[[6]byte]bool{},
		states:   map[string]NeighState{},
	}
	n.wg.Add(2)
	go n.run(every)
	go n.readEvents()
	return n
}

// want asks for a peer to be resolved. It never blocks: when the queue is
// full the next Send or tick asks again.
func (n *neighbours) want(a netip.Addr) {
	select {
	case n.wantc <- a:
	default:
	}
}

func (n *neighbours) setPeers(addrs []namedAddr) {
	n.pmu.Lock()
	n.pending = addrs
	n.pmu.Unlock()
	select {
	case n.peerc <- struct{}{}:
	default:
	}
}

func (n *neighbours) stop() {
	close(n.done)
	n.ev.Close() // ends readEvents' Receive
	n.wg.Wait()
}

func (n *neighbours) run(every time.Duration) {
	defer n.wg.Done()
	defer n.h.Close()
	defer n.nl.Close()
	defer n.deleteCreated(nil)
	tick := time.NewTicker(every)
	defer tick.Stop()
	// After a first attempt, re-read the table a few times at growing
	// intervals (5 ms .. 640 ms, about 1.3 s in all), so a peer that answers
	// within milliseconds is usable at once. Later attempts are read at the
	// next retry only: a peer that did not answer then is not in a hurry.
	poll := newStopped()
	defer poll.Stop()
	retry := newStopped()
	defer retry.Stop()
	var pollDelay time.Duration
	// Learn the gateways' MACs before the peers arrive (see gatewayMACs).
	n.refresh(true)
	resolveNow := func() {
		if n.refresh(true) {
			pollDelay = 5 * time.Millisecond
			poll.Reset(pollDelay)
		}
		n.armRetry(retry)
	}
	for {
		select {
		case <-n.done:
			return
		case <-tick.C:
			resolveNow()
		case <-retry.C:
			resolveNow()
		case <-n.peerc:
			n.applyPeers()
			resolveNow()
		case a := <-n.wantc:
			if n.drainWants(a) {
				resolveNow()
			}
		case e := <-n.events:
			// A lost entry is re-created at once (an attempt is due for a
			// peer that had a MAC); a peer back is simply read.
			if n.drainEvents(e) {
				resolveNow()
			}
		case <-poll.C:
			n.refresh(false)
			if pollDelay < 640*time.Millisecond && !n.resolved() {
				pollDelay *= 2
				poll.Reset(pollDelay)
			}
		}
	}
}

func newStopped() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// drainWants tracks a and what else Send queued meanwhile (bounded by the
// channel's capacity) and reports whether an attempt is due.
func (n *neighbours) drainWants(a netip.Addr) bool {
	need := n.track(a)
	for i := 0; i < cap(n.wantc); i++ {
		select {
		case a := <-n.wantc:
			need = n.track(a) || need
		default:
			return need
		}
	}
	return need
}

// armRetry sets the retry timer to the earliest due attempt, if any. Only
// peers without a usable kernel entry have one (a peer in its grace period
// included: its retry also ends the grace).
func (n *neighbours) armRetry(retry *time.Timer) {
	var first time.Time
	for _, p := range n.tracked {
		if !p.next.IsZero() && (first.IsZero() || p.next.Before(first)) {
			first = p.next
		}
	}
	retry.Stop()
	if !first.IsZero() {
		retry.Reset(max(time.Until(first), time.Millisecond))
	}
}

// track starts tracking a peer Send asked for. It reports whether an
// attempt is due: the peer is new, or its backoff gap has passed.
func (n *neighbours) track(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	p, ok := n.tracked[a]
	if !ok {
		n.tracked[a] = &peerTrack{name: a.String()}
		return true
	}
	return !time.Now().Before(p.next)
}

func (n *neighbours) applyPeers() {
	n.pmu.Lock()
	addrs := n.pending
	n.pending = nil
	n.pmu.Unlock()
	if addrs == nil {
		return
	}
	next := make(map[netip.Addr]*peerTrack, len(addrs))
	keep := make(map[netip.Addr]bool, len(addrs))
	for _, na := range addrs {
		if !na.addr.IsValid() {
			continue
		}
		p := n.tracked[na.addr]
		if p == nil {
			p = &peerTrack{}
		}
		p.name = na.name
		next[na.addr], keep[na.addr] = p, true
	}
	if !n.swept {
		n.sweep(keep)
		n.swept = true
	}
	// Once SetPeers is in use it is the authority: forget everything else,
	// including peers Send mentioned, and stop probing departed ones.
	n.deleteCreated(keep)
	n.tracked = next
}

func (n *neighbours) resolved() bool {
	for _, e := range n.out.Load().m {
		if e.err == ErrNoMAC {
			return false
		}
	}
	return true
}

// refresh rebuilds the snapshot from the kernel's neighbour table. With
// resolve it also checks routes and triggers resolution for peers whose
// backoff gap has passed. It reports whether a first attempt was made.
func (n *neighbours) refresh(resolve bool) (first bool) {
	kernel, err := n.dump()
	if err != nil {
		n.log.Warn("l2: reading neighbour table failed; keeping the cached MACs", "iface", n.iface, "err", err)
		return false
	}
	// Every time: a peer must not be taken for on-segment for a moment
	// just because the gateway's MAC came in after the last attempt.
	n.gateways = n.gatewayMACs(kernel, resolve)
	now := time.Now()
	in := make(map[netip.Addr]neighInput, len(n.tracked))
	for a, p := range n.tracked {
		k, present := kernel[a]
		if present && k.usable() {
			p.tries, p.next, p.notOnLink = 0, time.Time{}, nil
			p.lastMAC, p.hasLast, p.lostAt = k.mac, true, time.Time{}
			in[a] = neighInput{name: p.name, mac: k.mac, ok: true}
			continue
		}
		if resolve && !now.Before(p.next) {
			n.attempt(a, p, now)
			first = first || p.tries == 1
		}
		if p.inGrace(present && k.state&nudFailed != 0, now) {
			in[a] = neighInput{name: p.name, mac: p.lastMAC, ok: true}
			continue
		}
		in[a] = pendingInput(p)
	}
	t := classify(in, n.gateways)
	n.out.Store(t)
	n.noteChanges(t)
	return first
}

// inGrace reports whether a peer that had a MAC may keep it while its
// kernel entry is gone or being probed again (flushed on a link flap or by
// an admin, re-created by the attempt above): its MAC has not changed, and
// dropping it would lose relays and the loop guard's knowledge for the
// milliseconds re-resolution takes. Only a FAILED entry or macGrace ends it.
func (p *peerTrack) inGrace(failed bool, now time.Time) bool {
	if !p.hasLast || failed {
		p.hasLast = false
		return false
	}
	if p.lostAt.IsZero() {
		p.lostAt = now
	}
	if now.Sub(p.lostAt) >= macGrace {
		p.hasLast = false
		return false
	}
	return true
}

// pendingInput is the state of an address that has no usable MAC.
func pendingInput(p *peerTrack) neighInput {
	switch {
	case p.notOnLink != nil:
		return neighInput{name: p.name, state: StateNotOnLink, err: p.notOnLink}
	case p.tries >= failAfter:
		return neighInput{name: p.name, state: StateFailed, err: ErrNoMAC}
	}
	return neighInput{name: p.name, state: StateUnresolved, err: ErrNoMAC}
}

// attempt checks that a is on our link and, if so, asks the kernel to
// resolve it; the next attempt waits for the backoff gap.
func (n *neighbours) attempt(a netip.Addr, p *peerTrack, now time.Time) {
	p.tries++
	p.next = now.Add(resolveGap(p.tries))
	p.notOnLink = n.onLink(a)
	if p.notOnLink == nil {
		n.attempts.Add(1)
		n.resolve(a)
	}
}

// noteChanges logs each peer whose state changed and signals the change.
func (n *neighbours) noteChanges(t *neighTable) {
	changed := false
	seen := make(map[string]bool, len(n.states))
	for _, ps := range t.peerStates() {
		seen[ps.Name] = true
		old, known := n.states[ps.Name]
		if known && old == ps.State {
			continue
		}
		n.states[ps.Name] = ps.State
		changed = true
		lvl := stateLogLevel(known, ps.State)
		if !n.log.Enabled(context.Background(), lvl) {
			continue
		}
		attrs := []any{"peer", ps.Name, "addr", ps.Addr, "state", ps.State.String(), "iface", n.iface}
		if ps.State == StateResolved || ps.State == StateNotOnSegment {
			attrs = append(attrs, "mac", macString(ps.MAC))
		}
		if ps.Err != nil {
			attrs = append(attrs, "reason", ps.Err)
		}
		n.log.Log(context.Background(), lvl, "l2: peer state changed", attrs...)
	}
	for name := range n.states {
		if !seen[name] {
			delete(n.states, name)
			changed = true
		}
	}
	if changed {
		select {
		case n.changed <- struct{}{}:
		default:
		}
	}
}

// stateLogLevel keeps a start with many peers quiet: a new peer being
// resolved is routine (debug), a change is news (info), and a peer l2
// cannot reach is a warning.
func stateLogLevel(known bool, s NeighState) slog.Level {
	switch {
	case s != StateResolved && s != StateUnresolved:
		return slog.LevelWarn
	case known:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// onLink reports whether the kernel would send to a directly on our
// interface, without a gateway: only then can an Ethernet frame reach it.
func (n *neighbours) onLink(a netip.Addr) error {
	routes, err := n.h.RouteGet(a.AsSlice())
	if err != nil {
		return fmt.Errorf("%w: no route to %s: %v", ErrNotOnLink, a, err)
	}
	if len(routes) == 0 {
		return fmt.Errorf("%w: no route to %s", ErrNotOnLink, a)
	}
	r := routes[0]
	if r.Gw != nil {
		return fmt.Errorf("%w: %s is routed via gateway %s; l2 needs peers on the same link as %s (use the routed transport)", ErrNotOnLink, a, r.Gw, n.iface)
	}
	if r.LinkIndex != n.ifindex {
		name := fmt.Sprintf("ifindex %d", r.LinkIndex)
		if l, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		return fmt.Errorf("%w: %s is reached via %s, not %s", ErrNotOnLink, a, name, n.iface)
	}
	return nil
}
