package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// resolveUplink returns the named interface, or with an empty name the
// interface of the IPv4 default route (else the IPv6 one).
func resolveUplink(name string) (*net.Interface, error) {
	if name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("--iface %q: no such interface", name)
		}
		return ifi, nil
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
				continue
			}
			idx := r.LinkIndex
			if idx == 0 && len(r.MultiPath) > 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			if idx == 0 {
				continue
			}
			return net.InterfaceByIndex(idx)
		}
	}
	return nil, errors.New("--iface is empty and there is no default route to take the interface from")
}

// identity is what tells a packet we sent ourselves from one that came from the network.
type identity struct {
	addrs []netip.Addr // every address on the node (VIPs included)
	macs  [][6]byte    // the uplink's MAC
}

func localIdentity(uplink *net.Interface) (identity, error) {
	var id identity
	if len(uplink.HardwareAddr) == 6 {
		id.macs = append(id.macs, [6]byte(uplink.HardwareAddr))
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return id, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			id.addrs = append(id.addrs, ip.Unmap())
		}
	}
	return id, nil
}
