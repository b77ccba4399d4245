// Package peers keeps the set of nodes go-pmtud relays to.
//
// Sources (the static --peers list, the Kubernetes Node watch) each publish
// their own list; the Registry merges them into one immutable Set and swaps
// it atomically, so the packet path reads a snapshot without ever taking a
// lock that the API watch could hold.
package peers

import (
	"net/netip"
	"slices"
	"strings"
)

// Peer is one node to relay to.
type Peer struct {
	Name string     // node name where known, else the address
	Addr netip.Addr // unmapped: an IPv4 peer is a 4-byte address
}

// Set is an immutable snapshot of peers, sorted by address, without duplicates.
type Set struct {
	all    []Peer
	v4, v6 []Peer
}

// NewSet builds a Set from peers, dropping invalid and duplicate addresses
// and any address in exclude (our own).
func NewSet(list []Peer, exclude ...netip.Addr) *Set {
	s := &Set{}
	for _, p := range list {
		if !p.Addr.IsValid() {
			continue
		}
		p.Addr = p.Addr.Unmap()
		if slices.Contains(exclude, p.Addr) {
			continue
		}
		if p.Name == "" {
			p.Name = p.Addr.String()
		}
		s.all = append(s.all, p)
	}
	slices.SortFunc(s.all, func(a, b Peer) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	s.all = slices.CompactFunc(s.all, func(a, b Peer) bool { return a.Addr == b.Addr })
	for _, p := range s.all {
		if p.Addr.Is4() {
			s.v4 = append(s.v4, p)
		} else {
			s.v6 = append(s.v6, p)
		}
	}
	return s
}

// All returns every peer. The caller must not modify the slice.
func (s *Set) All() []Peer {
	if s == nil {
		return nil
	}
	return s.all
}

// Family returns the peers of one address family (4 or 6). The caller must not modify the slice.
func (s *Set) Family(f uint8) []Peer {
	if s == nil {
		return nil
	}
	if f == 4 {
		return s.v4
	}
	return s.v6
}

// Len is the number of peers.
func (s *Set) Len() int { return len(s.All()) }

// Contains reports whether addr is a peer.
func (s *Set) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	_, ok := slices.BinarySearchFunc(s.All(), addr, func(p Peer, a netip.Addr) int { return p.Addr.Compare(a) })
	return ok
}

// Equal reports whether two sets hold the same peers.
func (s *Set) Equal(o *Set) bool { return slices.Equal(s.All(), o.All()) }
