package transport

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// NeighState is what l2 knows about reaching one peer.
type NeighState uint8

// The states, best first: a peer with several addresses takes the best of
// its addresses' states.
const (
	// StateResolved: the peer's MAC is known and l2 sends to it.
	StateResolved NeighState = iota
	// StateUnresolved: resolution was triggered and nobody answered yet.
	StateUnresolved
	// StateFailed: nobody answered after failAfter attempts; l2 keeps
	// trying with a growing gap (a powered-off node, a stale peer entry).
	StateFailed
	// StateNotOnSegment: the MAC the peer resolves to is shared with another
	// peer of the same family or with the default gateway. A router answers
	// ARP / neighbour discovery for it (proxy ARP): the peer is elsewhere.
	// l2 does not send to it, and its MAC is not a peer MAC for the loop guard.
	StateNotOnSegment
	// StateNotOnLink: the route to the peer goes via a gateway or another
	// interface, so no Ethernet frame on this interface can reach it.
	StateNotOnLink

	numNeighStates
)

var neighStateNames = [numNeighStates]string{
	StateResolved:     "resolved",
	StateUnresolved:   "unresolved",
	StateFailed:       "failed",
	StateNotOnSegment: "not_on_segment",
	StateNotOnLink:    "not_on_link",
}

// String is the state's metric label value and log field.
func (s NeighState) String() string {
	if s < numNeighStates {
		return neighStateNames[s]
	}
	return "unknown"
}

// NeighStates lists every state, for pre-registering a gauge by state.
func NeighStates() []NeighState {
	out := make([]NeighState, numNeighStates)
	for i := range out {
		out[i] = NeighState(i)
	}
	return out
}

// PeerState is the l2 view of one peer node.
type PeerState struct {
	Name  string
	State NeighState
	Addr  netip.Addr // the address the state is about (the peer's best)
	MAC   [6]byte    // set when Resolved or NotOnSegment
	Err   error      // why it is not Resolved; nil when it is
}

// neighInput is one tracked peer address as the refresher sees it.
type neighInput struct {
	name  string
	mac   [6]byte
	ok    bool       // mac is usable
	state NeighState // when !ok: Unresolved, Failed or NotOnLink
	err   error      // when !ok
}

// classify turns the refresher's view of the tracked addresses into the
// table Send reads. A usable MAC is refused as NotOnSegment when it is one
// of the gateways' MACs, or when peers of different names share it within
// one family (one node's IPv4 and IPv6 addresses share its MAC, which is
// normal; proxy ARP and proxy NDP are separate, so that pairing is no sign).
func classify(in map[netip.Addr]neighInput, gateways map[[6]byte]bool) *neighTable {
	type key struct {
		v6  bool
		mac [6]byte
	}
	owner := map[key]string{}
	shared := map[key]bool{}
	for a, e := range in {
		if !e.ok {
			continue
		}
		k := key{a.Is6(), e.mac}
		if n, seen := owner[k]; seen && n != e.name {
			shared[k] = true
		}
		owner[k] = e.name
	}
	t := &neighTable{m: make(map[netip.Addr]neighEntry, len(in))}
	seen := map[[6]byte]bool{}
	for a, e := range in {
		switch {
		case !e.ok:
			t.m[a] = neighEntry{name: e.name, state: e.state, err: e.err}
		case gateways[e.mac] || shared[key{a.Is6(), e.mac}]:
			t.m[a] = neighEntry{name: e.name, mac: e.mac, state: StateNotOnSegment, err: ErrNotOnSegment}
		default:
			t.m[a] = neighEntry{name: e.name, mac: e.mac}
			if !seen[e.mac] {
				seen[e.mac] = true
				t.macs = append(t.macs, e.mac)
			}
		}
	}
	// A stable order, so that a view built from it compares equal.
	slices.SortFunc(t.macs, func(x, y [6]byte) int { return slices.Compare(x[:], y[:]) })
	return t
}

// peerStates reduces the table to one state per peer name, sorted by name.
func (t *neighTable) peerStates() []PeerState {
	best := map[string]PeerState{}
	for a, e := range t.m {
		ps := PeerState{Name: e.name, State: e.state, Addr: a, MAC: e.mac, Err: e.err}
		if cur, ok := best[e.name]; !ok || betterState(ps, cur) {
			best[e.name] = ps
		}
	}
	out := make([]PeerState, 0, len(best))
	for _, ps := range best {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(x, y PeerState) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

func betterState(x, y PeerState) bool {
	if x.State != y.State {
		return x.State < y.State
	}
	return x.Addr.Less(y.Addr) // deterministic among equals
}

// CountStates counts peers by state label, every state present (zero
// included), for a gauge by state.
func CountStates(ps []PeerState) map[string]int {
	out := make(map[string]int, numNeighStates)
	for _, s := range NeighStates() {
		out[s.String()] = 0
	}
	for _, p := range ps {
		out[p.State.String()]++
	}
	return out
}

// SummarizeStates is a one-line readiness detail: how many peers are
// resolved, then each other peer with its state and reason, e.g.
// "2 of 3 peers resolved; n4 failed (no MAC for peer)". At most limit
// peers are named (0: all); the rest are counted.
func SummarizeStates(ps []PeerState, limit int) string {
	var b strings.Builder
	resolved := 0
	for _, p := range ps {
		if p.State == StateResolved {
			resolved++
		}
	}
	fmt.Fprintf(&b, "%d of %d peers resolved", resolved, len(ps))
	named := 0
	for _, p := range ps {
		if p.State == StateResolved {
			continue
		}
		if limit > 0 && named == limit {
			fmt.Fprintf(&b, "; and %d more", len(ps)-resolved-named)
			break
		}
		sep := ", "
		if named == 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, p.Name, p.State)
		if p.Err != nil {
			fmt.Fprintf(&b, " (%v)", p.Err)
		}
		named++
	}
	return b.String()
}
