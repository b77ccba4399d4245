package fanout

import (
	"net/netip"
	"slices"
	"testing"
)

var (
	lbIP      = netip.MustParseAddr("192.0.2.10")
	clusterIP = netip.MustParseAddr("10.96.0.10")
	lbIP6     = netip.MustParseAddr("2001:db8::10")
	other     = netip.MustParseAddr("192.0.2.99")
	https     = Port{443, TCP}
	dns       = Port{53, UDP}
)

func TestOwners(t *testing.T) {
	svcs := []Service{
		{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{clusterIP, lbIP, lbIP6}, Ports: []Port{https}},
		{Namespace: "web", Name: "cluster", Local: false, Addrs: []netip.Addr{lbIP}, Ports: []Port{{80, TCP}}},
		{Namespace: "dns", Name: "resolver", Local: true, Addrs: []netip.Addr{lbIP}, Ports: []Port{dns}},
		{Namespace: "web", Name: "no-endpoints", Local: true, Addrs: []netip.Addr{other}, Ports: []Port{https}},
		{Namespace: "web", Name: "unknown-node", Local: true, Addrs: []netip.Addr{other}, Ports: []Port{{8443, TCP}}},
	}
	sl := []Slice{
		{Namespace: "web", Service: "front", Nodes: []string{"node-3", "node-1"}},
		{Namespace: "web", Service: "front", Nodes: []string{"node-1", "node-7"}}, // the IPv6 slice
		{Namespace: "web", Service: "cluster", Nodes: []string{"node-2"}},
		{Namespace: "dns", Service: "resolver", Nodes: []string{"node-5"}},
		{Namespace: "web", Service: "unknown-node", Nodes: []string{"node-4", ""}},
		{Namespace: "other", Service: "front", Nodes: []string{"node-9"}}, // same name, other namespace
	}
	tab := Build(svcs, sl)
	cases := []struct {
		name  string
		addr  netip.Addr
		port  Port
		nodes []string // nil: every peer
	}{
		{"Local via LoadBalancer IP", lbIP, https, []string{"node-1", "node-3", "node-7"}},
		{"Local via clusterIP", clusterIP, https, []string{"node-1", "node-3", "node-7"}},
		{"Local via IPv6", lbIP6, https, []string{"node-1", "node-3", "node-7"}},
		{"Local, IPv4-mapped", netip.AddrFrom16(lbIP.As16()), https, []string{"node-1", "node-3", "node-7"}},
		{"Local, other protocol", lbIP, Port{443, UDP}, nil},
		{"Cluster on the same IP", lbIP, Port{80, TCP}, nil},
		{"Local UDP on the same IP", lbIP, dns, []string{"node-5"}},
		{"not a Service port", lbIP, Port{8080, TCP}, nil},
		{"not a Service address", netip.MustParseAddr("198.51.100.1"), https, nil},
		{"Local without endpoints", other, https, nil},
		{"Local with an endpoint of unknown node", other, Port{8443, TCP}, nil},
	}
	for _, c := range cases {
		got, all := tab.Owners(c.addr, c.port.Port, c.port.Proto)
		if all != (c.nodes == nil) || !slices.Equal(got, c.nodes) {
			t.Errorf("%s: Owners = %v, all=%v; want %v", c.name, got, all, c.nodes)
		}
	}
	if tab.Len() != 4 {
		t.Errorf("Len = %d, want 4 targeted keys", tab.Len())
	}
}

func TestSharedKey(t *testing.T) {
	a := Service{Namespace: "a", Name: "a", Local: true, Addrs: []netip.Addr{lbIP}, Ports: []Port{https}}
	b := Service{Namespace: "b", Name: "b", Local: true, Addrs: []netip.Addr{lbIP}, Ports: []Port{https}}
	c := Service{Namespace: "c", Name: "c", Local: false, Addrs: []netip.Addr{lbIP}, Ports: []Port{https}}
	sl := []Slice{{"a", "a", []string{"n2"}}, {"b", "b", []string{"n1", "n2"}}, {"c", "c", []string{"n3"}}}
	if got, all := Build([]Service{a, b}, sl).Owners(lbIP, 443, TCP); all || !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("two Local Services on one key: %v all=%v, want their nodes merged", got, all)
	}
	for _, order := range [][]Service{{a, c}, {c, a}, {a, c, b}} {
		if got, all := Build(order, sl).Owners(lbIP, 443, TCP); !all {
			t.Errorf("a Cluster Service on the key: %v, want every peer", got)
		}
	}
}

func TestNilTable(t *testing.T) {
	var tab *Table
	if _, all := tab.Owners(lbIP, 443, TCP); !all || tab.Len() != 0 {
		t.Error("a nil table must mean every peer")
	}
	if _, all := (&Table{}).Owners(lbIP, 443, TCP); !all {
		t.Error("the zero table must mean every peer")
	}
}

func TestOwnersAllocatesNothing(t *testing.T) {
	tab := Build([]Service{{Namespace: "a", Name: "a", Local: true, Addrs: []netip.Addr{lbIP}, Ports: []Port{https}}},
		[]Slice{{"a", "a", []string{"n1"}}})
	if a := testing.AllocsPerRun(1000, func() { tab.Owners(lbIP, 443, TCP); tab.Owners(other, 1, UDP) }); a != 0 {
		t.Errorf("Owners allocates %v", a)
	}
}

func BenchmarkOwners(b *testing.B) {
	var svcs []Service
	var sl []Slice
	for i := range 2000 {
		name := string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		svcs = append(svcs, Service{Namespace: "ns", Name: name, Local: i%3 == 0,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})}, Ports: []Port{https, {80, TCP}}})
		sl = append(sl, Slice{"ns", name, []string{"node-1", "node-2", "node-3"}})
	}
	tab := Build(svcs, sl)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tab.Owners(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8 & 7), byte(i)}), 443, TCP)
	}
}

// TestHasAddrKnowsEveryServiceAddress: Local or Cluster, every address of a
// Service is one this node may DNAT (the tunnel receiver's VIP check).
func TestHasAddrKnowsEveryServiceAddress(t *testing.T) {
	local, cluster := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::20")
	tab := Build([]Service{
		{Namespace: "a", Name: "l", Local: true, Addrs: []netip.Addr{local}, Ports: []Port{{80, TCP}}},
		{Namespace: "a", Name: "c", Addrs: []netip.Addr{cluster}, Ports: []Port{{443, TCP}}},
	}, nil)
	if !tab.HasAddr(local) || !tab.HasAddr(cluster) || tab.HasAddr(netip.MustParseAddr("203.0.113.11")) {
		t.Fatal("HasAddr must know every Service address and nothing else")
	}
	var none *Table
	if none.HasAddr(local) {
		t.Fatal("a nil table knows no Service")
	}
	if a := testing.AllocsPerRun(100, func() { tab.HasAddr(local) }); a != 0 {
		t.Fatalf("HasAddr allocates %v", a)
	}
}

// TestEqual: tables built from the same facts (in any order) are equal; a
// moved endpoint, a policy turned Cluster or another address is not.
func TestEqual(t *testing.T) {
	svcs := []Service{{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{clusterIP, lbIP}, Ports: []Port{https}}}
	sl := []Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-3", "node-1"}}}
	a := Build(svcs, sl)
	if b := Build(svcs, []Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-1", "node-3", "node-1"}}}); !a.Equal(b) {
		t.Error("the same owners in another order differ")
	}
	cluster := []Service{svcs[0]}
	cluster[0].Local = false
	other := []Service{svcs[0]}
	other[0].Addrs = []netip.Addr{clusterIP, lbIP6}
	for name, b := range map[string]*Table{
		"moved endpoint": Build(svcs, []Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-1", "node-4"}}}),
		"policy Cluster": Build(cluster, sl),
		"other address":  Build(other, sl),
		"nil":            nil,
	} {
		if a.Equal(b) || b.Equal(a) {
			t.Errorf("%s: equal", name)
		}
	}
	if !(*Table)(nil).Equal(nil) {
		t.Error("nil tables differ")
	}
}
