// Package fanout decides which nodes can own a flow that a PTB is about,
// so a relay goes to them instead of to every peer.
//
// A PTB quotes the packet the owner sent; its source is a Service address
// (clusterIP, externalIP or LoadBalancer ingress IP) and port. With
// externalTrafficPolicy Local only nodes with an endpoint of the Service
// receive its traffic (only they announce the VIP or pass the load
// balancer's health check), so only they can own the flow. For anything
// else (policy Cluster, an address or port that is no Service's, a Service
// whose endpoints are not known by node) every peer can.
//
// The package is pure: Build turns facts trimmed from Services and
// EndpointSlices into an immutable Table; Owners is one map lookup and
// allocates nothing.
package fanout

import (
	"maps"
	"net/netip"
	"slices"
)

// IP protocol numbers of Service ports.
const (
	TCP  = 6
	UDP  = 17
	SCTP = 132
)

// Port is one port of a Service: the quoted packet's source port and protocol.
type Port struct {
	Port  uint16
	Proto uint8
}

// Service is what the decision needs of a Service.
type Service struct {
	Namespace, Name string
	// Local: externalTrafficPolicy Local.
	Local bool
	// Addrs: clusterIPs, externalIPs and LoadBalancer ingress IPs.
	Addrs []netip.Addr
	Ports []Port
}

// Slice is what the decision needs of an EndpointSlice: its Service and the
// node of each endpoint. An empty node name is an endpoint whose node is
// not known: then every peer may own the Service's flows.
//
// Every endpoint counts, ready or not: a connection established while the
// pod was ready lives on while it is terminating or failing its probe, and
// its node still owns that flow.
type Slice struct {
	Namespace, Service string
	Nodes              []string
}

// Table maps a Service address, port and protocol to the nodes that can own
// flows from it. Immutable; the zero value and nil mean "every peer".
type Table struct {
	m     map[key][]string      // nil value: every peer
	addrs map[[16]byte]struct{} // every Service address, for HasAddr
}

type key struct {
	addr  [16]byte
	port  uint16
	proto uint8
}

func keyOf(a netip.Addr, port uint16, proto uint8) key {
	return key{addr: a.Unmap().As16(), port: port, proto: proto}
}

type svcID struct{ ns, name string }

// Build returns the table for svcs and slices. A key that several Services
// claim is targeted only if every one of them is Local (their nodes are
// merged); one Cluster claimant makes it every peer. A Local Service with
// no endpoint known, or an endpoint without a node, is every peer too:
// targeting it could only lose a flow a stale cache does not show.
func Build(svcs []Service, slices []Slice) *Table {
	owners := ownersByService(slices)
	t := &Table{m: map[key][]string{}, addrs: map[[16]byte]struct{}{}}
	for _, s := range svcs {
		ns, ok := owners[svcID{s.Namespace, s.Name}]
		if !s.Local || !ok {
			ns = nil // every peer
		}
		for _, a := range s.Addrs {
			if !a.IsValid() {
				continue
			}
			t.addrs[a.Unmap().As16()] = struct{}{}
			for _, p := range s.Ports {
				t.claim(keyOf(a, p.Port, p.Proto), ns)
			}
		}
	}
	for k, ns := range t.m {
		if ns == nil {
			delete(t.m, k) // absent: every peer
		}
	}
	return t
}

// claim records that a Service whose flows nodes can own (nil: any peer)
// uses key k. The keys of one Service share one slice.
func (t *Table) claim(k key, nodes []string) {
	cur, seen := t.m[k]
	switch {
	case !seen:
		t.m[k] = nodes
	case cur == nil || nodes == nil:
		t.m[k] = nil
	default:
		merged := append(slices.Clone(cur), nodes...)
		slices.Sort(merged)
		t.m[k] = slices.Clip(slices.Compact(merged))
	}
}

// ownersByService returns each Service's endpoint nodes, sorted and unique;
// a Service with an endpoint of unknown node, or none, is left out.
func ownersByService(slcs []Slice) map[svcID][]string {
	nodes := map[svcID][]string{}
	unknown := map[svcID]bool{}
	for _, s := range slcs {
		id := svcID{s.Namespace, s.Service}
		for _, n := range s.Nodes {
			if n == "" {
				unknown[id] = true
				continue
			}
			nodes[id] = append(nodes[id], n)
		}
	}
	for id, ns := range nodes {
		if unknown[id] {
			delete(nodes, id)
			continue
		}
		slices.Sort(ns)
		nodes[id] = slices.Clip(slices.Compact(ns))
	}
	return nodes
}

// Owners returns the nodes that can own a flow whose packets leave from
// src:port over proto, sorted and unique, or all == true when every peer
// can. The caller must not modify the slice.
func (t *Table) Owners(src netip.Addr, port uint16, proto uint8) (nodes []string, all bool) {
	if t == nil {
		return nil, true
	}
	ns, ok := t.m[keyOf(src, port, proto)]
	if !ok {
		return nil, true
	}
	return ns, false
}

// HasAddr reports whether a is a Service's address (clusterIP, externalIP
// or LoadBalancer ingress IP), Local or not: one kube-proxy may DNAT on
// this node without assigning it to any interface. It does not allocate.
func (t *Table) HasAddr(a netip.Addr) bool {
	if t == nil {
		return false
	}
	_, ok := t.addrs[a.Unmap().As16()]
	return ok
}

// Len is the number of targeted keys (Service address, port, protocol).
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.m)
}

// Equal reports whether t and o relay alike: the same keys with the same
// owners (nil, every peer, differs from an empty list) and addresses.
func (t *Table) Equal(o *Table) bool {
	if t == nil || o == nil {
		return t == o
	}
	return maps.Equal(t.addrs, o.addrs) && maps.EqualFunc(t.m, o.m, func(a, b []string) bool {
		return (a == nil) == (b == nil) && slices.Equal(a, b)
	})
}
