// Package peers keeps the set of nodes go-pmtud relays to.
//
// Sources (the static --peers list, the Kubernetes Node watch) each publish
// their own list; the Registry merges them into one immutable Set and swaps
// it atomically, so the packet path reads a snapshot without ever taking a
// lock that the API watch could hold.
//
// A peer is a node, not an address: a dual-stack Node with an IPv4 and an
// IPv6 InternalIP is one peer and gets one frame per message. Transports
// that reach a node by its MAC (l2, broadcast) or carry any family in UDP
// (tunnel) relay both families to a node known by one address; only the
// re-addressing routed transport needs an address of the message's family.
package peers

import (
	"net/netip"
	"slices"
	"strings"
)

// Peer is one node to relay to, with up to one address per family.
type Peer struct {
	Name string     // node name where known, else its first address
	V4   netip.Addr // invalid if the node has no IPv4 address we know
	V6   netip.Addr // invalid if the node has no IPv6 address we know
}

// PeerAt returns a peer named by its one address (the form --peers gives).
func PeerAt(a netip.Addr) Peer {
	p := Peer{Name: a.Unmap().String()}
	p.set(a)
	return p
}

// Addr is the address to reach the peer by when any family will do (neighbour
// resolution, the tunnel): IPv4 if known, else IPv6.
func (p Peer) Addr() netip.Addr {
	if p.V4.IsValid() {
		return p.V4
	}
	return p.V6
}

// AddrOf returns the peer's address of family f (4 or 6), invalid if none.
func (p Peer) AddrOf(f uint8) netip.Addr {
	if f == 4 {
		return p.V4
	}
	return p.V6
}

// Has reports whether a is one of the peer's addresses.
func (p Peer) Has(a netip.Addr) bool {
	return a.IsValid() && (a == p.V4 || a == p.V6)
}

// set records a as the peer's address of its family (unmapped, no zone).
func (p *Peer) set(a netip.Addr) {
	a = a.Unmap().WithZone("")
	switch {
	case a.Is4():
		p.V4 = a
	case a.Is6():
		p.V6 = a
	}
}

func (p Peer) valid() bool { return p.V4.IsValid() || p.V6.IsValid() }

// Set is an immutable snapshot of peers, sorted by name, one per node.
type Set struct {
	all    []Peer
	v4, v6 []Peer
	index  []addrIndex // every address, sorted, with its peer
}

type addrIndex struct {
	addr netip.Addr
	peer int // index into all
}

// NewSet builds a Set from peers. Entries are normalised (unmapped, zones
// dropped); entries that share a name or an address are one node (the
// Kubernetes source lists a node under its name, --peers by its address:
// an address already known under a node name joins that node); nodes with
// an address in exclude (our own) are left out.
func NewSet(list []Peer, exclude ...netip.Addr) *Set {
	s := &Set{}
	for _, p := range list {
		p.V4, p.V6 = norm(p.V4), norm(p.V6)
		if !p.valid() || excluded(p, exclude) {
			continue
		}
		if p.Name == "" {
			p.Name = p.Addr().String()
		}
		s.merge(p)
	}
	slices.SortFunc(s.all, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	for i, p := range s.all {
		if p.V4.IsValid() {
			s.v4 = append(s.v4, p)
			s.index = append(s.index, addrIndex{p.V4, i})
		}
		if p.V6.IsValid() {
			s.v6 = append(s.v6, p)
			s.index = append(s.index, addrIndex{p.V6, i})
		}
	}
	slices.SortFunc(s.index, func(a, b addrIndex) int { return a.addr.Compare(b.addr) })
	return s
}

// merge adds p, or folds it into the node it names or shares an address with.
func (s *Set) merge(p Peer) {
	for i := range s.all {
		q := &s.all[i]
		if q.Name != p.Name && !sharesAddr(*q, p) {
			continue
		}
		if !q.V4.IsValid() {
			q.V4 = p.V4
		}
		if !q.V6.IsValid() {
			q.V6 = p.V6
		}
		// A node name beats a name that is only an address.
		if q.Name == q.Addr().String() || q.Name == q.V6.String() {
			if p.Name != p.Addr().String() {
				q.Name = p.Name
			}
		}
		return
	}
	s.all = append(s.all, p)
}

func sharesAddr(a, b Peer) bool {
	return (a.V4.IsValid() && a.V4 == b.V4) || (a.V6.IsValid() && a.V6 == b.V6)
}

func excluded(p Peer, exclude []netip.Addr) bool {
	for _, e := range exclude {
		if p.Has(norm(e)) {
			return true
		}
	}
	return false
}

func norm(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return a
	}
	return a.Unmap().WithZone("")
}

// All returns every peer. The caller must not modify the slice.
func (s *Set) All() []Peer {
	if s == nil {
		return nil
	}
	return s.all
}

// Family returns the peers that have an address of family f (4 or 6). The
// caller must not modify the slice.
func (s *Set) Family(f uint8) []Peer {
	if s == nil {
		return nil
	}
	if f == 4 {
		return s.v4
	}
	return s.v6
}

// Len is the number of peers (nodes).
func (s *Set) Len() int { return len(s.All()) }

// Index returns the position in All of the peer that has address addr, in
// O(log n), or -1.
func (s *Set) Index(addr netip.Addr) int {
	if s == nil {
		return -1
	}
	addr = norm(addr)
	i, ok := slices.BinarySearchFunc(s.index, addr, func(e addrIndex, a netip.Addr) int { return e.addr.Compare(a) })
	if !ok {
		return -1
	}
	return s.index[i].peer
}

// IndexByName returns the position in All of the peer called name, in
// O(log n), or -1.
func (s *Set) IndexByName(name string) int {
	i, ok := slices.BinarySearchFunc(s.All(), name, func(p Peer, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return -1
	}
	return i
}

// Contains reports whether addr is one of a peer's addresses.
func (s *Set) Contains(addr netip.Addr) bool { return s.Index(addr) >= 0 }

// Addrs returns every peer address, sorted (a new slice).
func (s *Set) Addrs() []netip.Addr {
	if s == nil {
		return nil
	}
	out := make([]netip.Addr, len(s.index))
	for i, e := range s.index {
		out[i] = e.addr
	}
	return out
}

// Equal reports whether two sets hold the same peers.
func (s *Set) Equal(o *Set) bool { return slices.Equal(s.All(), o.All()) }
