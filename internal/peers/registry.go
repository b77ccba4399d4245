package peers

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Registry merges the peer lists of several sources (e.g. "static",
// "kubernetes") into one immutable Set. Readers on the packet path call
// Snapshot, an atomic load; writers (the API watch) never block them.
type Registry struct {
	exclude []netip.Addr
	current atomic.Pointer[Set]

	mu      sync.Mutex
	sources map[string][]Peer
	changed chan struct{}
}

// NewRegistry returns an empty registry that leaves out our own addresses.
func NewRegistry(exclude ...netip.Addr) *Registry {
	r := &Registry{
		exclude: exclude,
		sources: map[string][]Peer{},
		changed: make(chan struct{}, 1),
	}
	r.current.Store(NewSet(nil, exclude...))
	return r
}

// Update replaces one source's list and publishes the merged set.
func (r *Registry) Update(source string, list []Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources[source] = slices.Clone(list)
	var all []Peer
	for _, name := range slices.Sorted(maps.Keys(r.sources)) {
		all = append(all, r.sources[name]...)
	}
	next := NewSet(all, r.exclude...)
	if next.Equal(r.current.Load()) {
		return
	}
	r.current.Store(next)
	select { // coalesce: a reader only needs to know "something changed"
	case r.changed <- struct{}{}:
	default:
	}
}

// Snapshot returns the current merged set. It never returns nil.
func (r *Registry) Snapshot() *Set { return r.current.Load() }

// Changed is signalled (coalesced) after the merged set changed.
func (r *Registry) Changed() <-chan struct{} { return r.changed }

// Counts returns how many peers each source lists (after excluding ourselves),
// for the peers-by-source metric.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.sources))
	for name, list := range r.sources {
		out[name] = NewSet(list, r.exclude...).Len()
	}
	return out
}
