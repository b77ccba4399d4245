//go:build linux

package transport

import (
	"errors"
	"net"
	"net/netip"

	mnl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The refresher's kernel operations: neighbour dump, add, delete (through
// the hand-encoded messages of neighmsg.go) and the gateways' MACs.

// dump reads our interface's neighbour table, keyed by address.
func (n *neighbours) dump() (map[netip.Addr]kernelNeigh, error) {
	body, err := encodeNeighDump(n.ifindex)
	if err != nil {
		return nil, err
	}
	msgs, err := n.nl.Execute(mnl.Message{
		Header: mnl.Header{Type: rtmGetNeigh, Flags: mnl.Request | mnl.Dump},
		Data:   body,
	})
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]kernelNeigh, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != rtmNewNeigh {
			continue
		}
		k, ok, err := decodeNeigh(m.Data)
		if err != nil || !ok || k.ifindex != n.ifindex { // filtered by the kernel too
			continue
		}
		out[k.addr] = k
	}
	return out, nil
}

func (n *neighbours) request(typ mnl.HeaderType, flags mnl.HeaderFlags, body []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = n.nl.Execute(mnl.Message{
		Header: mnl.Header{Type: typ, Flags: mnl.Request | mnl.Acknowledge | flags},
		Data:   body,
	})
	return err
}

func (n *neighbours) resolve(a netip.Addr) {
	body, err := encodeNeighManaged(a, n.ifindex)
	err = n.request(rtmNewNeigh, mnl.Create|mnl.Replace, body, err)
	if err == nil {
		// A change to the host's state: said once per entry, at info.
		if !n.created[a] {
			n.log.Info("l2: added a managed neighbour entry to resolve a peer (removed when it leaves and on exit)", "peer", a, "iface", n.iface, "proto", NeighProtocol)
		}
		n.created[a] = true
		return
	}
	// Older kernels: a one-shot resolution, an ordinary entry the kernel ages out.
	if err2 := n.useNeigh(a); err2 != nil {
		n.log.Warn("l2: cannot trigger neighbour resolution", "peer", a, "iface", n.iface, "managed_err", err, "err", err2)
		return
	}
	n.log.Debug("l2: resolving peer with NTF_USE (managed entries unsupported)", "peer", a, "iface", n.iface, "managed_err", err)
}

func (n *neighbours) useNeigh(a netip.Addr) error {
	body, err := encodeNeighUse(a, n.ifindex)
	return n.request(rtmNewNeigh, mnl.Create|mnl.Replace, body, err)
}

func (n *neighbours) del(a netip.Addr) error {
	body, err := encodeNeighDel(a, n.ifindex)
	err = n.request(rtmDelNeigh, 0, body, err)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// deleteCreated removes the managed entries we own for peers not in keep
// (all of them when keep is nil).
func (n *neighbours) deleteCreated(keep map[netip.Addr]bool) {
	for a := range n.created {
		if keep[a] {
			continue
		}
		if err := n.del(a); err != nil {
			n.log.Debug("l2: deleting managed neighbour entry failed", "peer", a, "err", err)
		} else {
			n.log.Info("l2: removed the managed neighbour entry", "peer", a, "iface", n.iface)
		}
		delete(n.created, a)
	}
}

// sweep handles the entries an earlier run marked and left behind: those
// of current peers are adopted (removed on exit like our own), the others
// deleted now.
func (n *neighbours) sweep(keep map[netip.Addr]bool) {
	kernel, err := n.dump()
	if err != nil {
		n.log.Warn("l2: cannot look for neighbour entries left by an earlier run", "iface", n.iface, "err", err)
		return
	}
	for a, k := range kernel {
		switch {
		case !k.ours():
		case keep[a]:
			n.created[a] = true
		default:
			if err := n.del(a); err != nil {
				n.log.Warn("l2: cannot remove a neighbour entry left by an earlier run", "addr", a, "iface", n.iface, "err", err)
				continue
			}
			n.log.Info("l2: removed a neighbour entry left by an earlier run (not a peer any more)", "addr", a, "iface", n.iface)
		}
	}
}

// gatewayMACs returns the MACs of the default routes' nexthops on our
// interface. A MAC a peer shares with them belongs to a router answering for
// that peer (proxy ARP). With resolve, a gateway without a usable entry
// gets a one-shot resolution, so that its MAC is known at the next refresh.
func (n *neighbours) gatewayMACs(kernel map[netip.Addr]kernelNeigh, resolve bool) map[[6]byte]bool {
	out := map[[6]byte]bool{}
	routes, err := n.h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		n.log.Debug("l2: listing routes for the gateways failed", "err", err)
		return n.gateways
	}
	for _, r := range routes {
		if r.Dst != nil && !isDefault(r.Dst) {
			continue
		}
		for _, gw := range nexthopsOn(r, n.ifindex) {
			if _, peer := n.tracked[gw]; peer {
				continue
			}
			if k, ok := kernel[gw]; ok && k.usable() {
				out[k.mac] = true
				continue
			}
			if resolve {
				if err := n.useNeigh(gw); err != nil {
					n.log.Debug("l2: cannot resolve the gateway", "gateway", gw, "err", err)
				}
			}
		}
	}
	return out
}

func isDefault(d *net.IPNet) bool {
	ones, _ := d.Mask.Size()
	return ones == 0
}

// nexthopsOn lists the gateways of r (single or multipath) on ifindex.
func nexthopsOn(r netlink.Route, ifindex int) []netip.Addr {
	var out []netip.Addr
	add := func(link int, gw net.IP) {
		if a, ok := netip.AddrFromSlice(gw); ok && link == ifindex {
			out = append(out, a.Unmap())
		}
	}
	if r.Gw != nil {
		add(r.LinkIndex, r.Gw)
	}
	for _, nh := range r.MultiPath {
		add(nh.LinkIndex, nh.Gw)
	}
	return out
}
