package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// uplinks are the interfaces PTBs arrive on, sorted by name.
type uplinks []net.Interface

func (u uplinks) names() []string {
	out := make([]string, len(u))
	for i, ifi := range u {
		out[i] = ifi.Name
	}
	return out
}

func (u uplinks) macs() [][6]byte {
	var out [][6]byte
	for _, ifi := range u {
		if len(ifi.HardwareAddr) == 6 {
			out = append(out, [6]byte(ifi.HardwareAddr))
		}
	}
	return out
}

// same reports whether u and o are the same interfaces: same names, and
// each with the same index and MAC (a deleted and recreated interface is
// another one).
func (u uplinks) same(o uplinks) bool {
	return slices.EqualFunc(u, o, func(a, b net.Interface) bool {
		return a.Name == b.Name && a.Index == b.Index && bytes.Equal(a.HardwareAddr, b.HardwareAddr)
	})
}

func (u uplinks) String() string { return strings.Join(u.names(), ",") }

// linkSource is what uplink discovery needs of the kernel; netlinkLinks is
// the real one, tests use a fake.
type linkSource interface {
	defaultRoutes() ([]netlink.Route, error)
	byName(name string) (*net.Interface, error)
	byIndex(index int) (*net.Interface, error)
}

// findUplinks returns the named interfaces, or with no names every
// interface of the IPv4 and IPv6 default routes of the main table (each
// multipath nexthop's too): a node dual-homed to two switches has two.
func findUplinks(src linkSource, names []string) (uplinks, error) {
	var out uplinks
	if len(names) > 0 {
		for _, n := range names {
			ifi, err := src.byName(n)
			if err != nil {
				return nil, fmt.Errorf("--iface %q: no such interface", n)
			}
			out = append(out, *ifi)
		}
		return sorted(out), nil
	}
	routes, err := src.defaultRoutes()
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	for _, idx := range defaultRouteLinks(routes) {
		ifi, err := src.byIndex(idx)
		if err != nil {
			continue // gone since the dump: the next look finds the truth
		}
		out = append(out, *ifi)
	}
	if len(out) == 0 {
		return nil, errors.New("--iface is empty and there is no default route to take the uplinks from")
	}
	return sorted(out), nil
}

func sorted(u uplinks) uplinks {
	slices.SortFunc(u, func(a, b net.Interface) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(u, func(a, b net.Interface) bool { return a.Name == b.Name })
}

// defaultRouteLinks returns the interface indexes of the default routes
// among routes (every family, every multipath nexthop), without repeats.
func defaultRouteLinks(routes []netlink.Route) []int {
	var out []int
	add := func(i int) {
		if i > 0 && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	for _, r := range routes {
		if r.Dst != nil && (!r.Dst.IP.IsUnspecified() || maskBits(r.Dst) != 0) {
			continue
		}
		add(r.LinkIndex)
		for _, nh := range r.MultiPath {
			add(nh.LinkIndex)
		}
	}
	return out
}

func maskBits(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

// netlinkLinks reads the calling thread's network namespace.
type netlinkLinks struct{}

func (netlinkLinks) defaultRoutes() ([]netlink.Route, error) {
	var all []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, err
		}
		all = append(all, routes...)
	}
	return all, nil
}

func (netlinkLinks) byName(name string) (*net.Interface, error) { return net.InterfaceByName(name) }
func (netlinkLinks) byIndex(i int) (*net.Interface, error)      { return net.InterfaceByIndex(i) }
