package daemon

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// identity is what tells a packet we sent ourselves from one that came from the network.
type identity struct {
	addrs []netip.Addr // every address on the node (VIPs included)
	macs  [][6]byte    // every uplink's MAC
}

func localIdentity(up uplinks) (identity, error) {
	id := identity{macs: up.macs()}
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
