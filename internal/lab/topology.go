// Package lab builds the ECMP namespace lab that `go-pmtud lab` shows and
// the end-to-end tests use: a client behind a 1400-byte hop, a router doing
// ECMP toward a Service VIP held by three nodes, and ICMP errors pinned onto
// a node that does not own the flow, as a hardware router hashing ICMP
// differently would. Everything lives in network namespaces the lab creates
// (named PREFIX-*) and always removes; the root namespace is never touched.
//
// It needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and no iproute2 or iptables
// binaries: links, addresses, routes and rules go through netlink handles
// bound to each namespace, firewall rules through nftables, sysctls through
// /proc/sys opened on a thread inside the namespace.
package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options choose the shape of one lab. Every lab is dual-stack; the family
// is picked per download.
type Options struct {
	Fabric   Fabric
	Receiver Receiver
	// FileSize is the size of the file each server offers at /file
	// (default 8 MiB).
	FileSize int
	// Prefix names the namespaces (PREFIX-router, ...). Empty picks a random
	// "pl" + 4 characters, unique per run.
	Prefix string
	// NodeMTU is the MTU of the nodes' links (default 9000). A control run
	// sets it to the narrow hop's MTU so no PTB is ever needed.
	NodeMTU int
}

// Lab is a built topology. Close it (it is safe to call more than once).
type Lab struct {
	Opts   Options
	Prefix string

	Client *NS
	Router *NS
	Nodes  [NumNodes]*NS
	// Pods[i] is the pod behind node i (ReceiverPod only).
	Pods [NumNodes]*NS

	// Owner is the index of the node the router sends TCP to the VIP to:
	// it owns every flow. ICMPTo is where the router's ICMP errors toward
	// the VIP land (never the owner).
	Owner, ICMPTo int

	// NarrowMTU is the MTU of the router's side of the client link.
	NarrowMTU int

	file    []byte
	mu      sync.Mutex
	servers []*http.Server
	daemons []*Daemon
	closed  bool

	tunnelKey string // the tunnel's key file (tunnelkey.go), once written
}

// Interface names inside the namespaces.
const (
	ifUplink = "eth0" // node uplink, client link, pod link (pod side)
	ifWAN    = "wan0" // router side of the client link
	ifBridge = "br0"  // router's bridge of the shared L2 fabric
	ifPod    = "pod0" // node side of the pod link
	// Dual-homed fabric only: the second uplink and its bridge.
	ifUplink2 = "eth1"
	ifBridge2 = "br1"
)

// Router routing tables that pin the VIP per protocol.
const (
	tableTCP  = 100
	tableICMP = 101
)

// NewPrefix returns a fresh namespace prefix: "pl" and 4 random characters.
func NewPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "pl" + string(b)
}

// NodeName is the name go-pmtud uses for node i (--nodename).
func NodeName(i int) string { return fmt.Sprintf("node%d", i+1) }

// Build creates the topology and starts the HTTP servers. On any error
// (or ctx cancelled) everything created so far is removed.
func Build(ctx context.Context, o Options) (l *Lab, err error) {
	if o.Fabric == "" {
		o.Fabric = FabricL2
	}
	if o.Receiver == "" {
		o.Receiver = ReceiverNode
	}
	if o.FileSize <= 0 {
		o.FileSize = 8 << 20
	}
	if o.NodeMTU <= 0 {
		o.NodeMTU = mtuJumbo
	}
	if o.Prefix == "" {
		o.Prefix = NewPrefix()
	}
	if !validPrefix(o.Prefix) {
		return nil, fmt.Errorf("invalid lab prefix %q (want pl + up to 6 of [a-z0-9])", o.Prefix)
	}
	if names, _ := ListNamespaces(o.Prefix); len(names) > 0 {
		return nil, fmt.Errorf("namespaces with prefix %s already exist (%v): remove them with `go-pmtud lab -teardown %s`", o.Prefix, names, o.Prefix)
	}
	l = &Lab{Opts: o, Prefix: o.Prefix, Owner: 0, ICMPTo: 1, NarrowMTU: mtuNarrow}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	steps := []func() error{
		l.makeNamespaces,
		l.baseSysctls,
		l.wireClient,
		l.wireFabric,
		l.routeVIP,
		l.placeVIP,
		l.wirePods,
		l.startServers,
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return l, err
		}
		if err := step(); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l *Lab) nsName(role string) string { return l.Prefix + "-" + role }

// all lists every namespace of the lab.
func (l *Lab) all() []*NS {
	out := []*NS{l.Client, l.Router}
	out = append(out, l.Nodes[:]...)
	out = append(out, l.Pods[:]...)
	var nn []*NS
	for _, n := range out {
		if n != nil {
			nn = append(nn, n)
		}
	}
	return nn
}

func (l *Lab) makeNamespaces() error {
	var err error
	if l.Router, err = newNS(l.nsName("router")); err != nil {
		return err
	}
	if l.Client, err = newNS(l.nsName("client")); err != nil {
		return err
	}
	for i := range l.Nodes {
		if l.Nodes[i], err = newNS(l.nsName(NodeName(i))); err != nil {
			return err
		}
		if l.Opts.Receiver == ReceiverPod {
			if l.Pods[i], err = newNS(l.nsName(fmt.Sprintf("pod%d", i+1))); err != nil {
				return err
			}
		}
	}
	return nil
}

// baseSysctls runs before any link exists so new interfaces inherit the
// defaults: no IPv6 DAD (addresses usable at once) and no router
// advertisements; forwarding where packets are routed.
func (l *Lab) baseSysctls() error {
	for _, n := range l.all() {
		for _, kv := range [][2]string{
			{"net.ipv6.conf.all.accept_dad", "0"},
			{"net.ipv6.conf.default.accept_dad", "0"},
			{"net.ipv6.conf.all.accept_ra", "0"},
			{"net.ipv6.conf.default.accept_ra", "0"},
		} {
			if err := n.Sysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	fwd := []*NS{l.Router}
	if l.Opts.Receiver == ReceiverPod {
		fwd = append(fwd, l.Nodes[:]...)
	}
	for _, n := range fwd {
		if err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		if err := n.Sysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
			return err
		}
	}
	for _, n := range l.all() {
		if err := linkUp(n, "lo"); err != nil {
			return err
		}
	}
	return nil
}

// veth creates a veth pair from inside a's namespace: aName (MTU aMTU) stays
// in a, bName (MTU bMTU) is created directly in b. Nothing passes through
// the root namespace.
func veth(a *NS, aName string, aMTU int, b *NS, bName string, bMTU int, master netlink.Link) error {
	attrs := netlink.LinkAttrs{Name: aName, MTU: aMTU}
	if master != nil {
		attrs.MasterIndex = master.Attrs().Index
	}
	v := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.Fd()),
		PeerMTU:       uint32(bMTU),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s - %s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	if err := linkUp(a, aName); err != nil {
		return err
	}
	return linkUp(b, bName)
}

func linkUp(n *NS, name string) error {
	link, err := n.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", n.Name, name, err)
	}
	if err := n.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: up %s: %w", n.Name, name, err)
	}
	return nil
}

// addAddr adds a/bits to the link; IPv6 addresses skip DAD.
func addAddr(n *NS, link string, a netip.Addr, bits int) error {
	lk, err := n.nl.LinkByName(link)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", n.Name, link, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := n.nl.AddrAdd(lk, addr); err != nil {
		return fmt.Errorf("%s: addr %s/%d on %s: %w", n.Name, a, bits, link, err)
	}
	return nil
}

func defaultRoute(n *NS, gw netip.Addr) error {
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if gw.Is6() {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	r := &netlink.Route{Dst: dst, Gw: gw.AsSlice()}
	if err := n.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("%s: default via %s: %w", n.Name, gw, err)
	}
	return nil
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// wireClient: the client's own end is jumbo (it advertises MSS 8960), the
// router's end is the narrow hop, so the router must answer the servers'
// big DF packets with frag-needed / packet-too-big.
func (l *Lab) wireClient() error {
	if err := veth(l.Router, ifWAN, l.NarrowMTU, l.Client, ifUplink, mtuJumbo, nil); err != nil {
		return err
	}
	for _, f := range []Family{IPv4, IPv6} {
		p := planFor(f)
		if err := addAddr(l.Router, ifWAN, p.wanR, p.bits); err != nil {
			return err
		}
		for _, c := range p.clients {
			if err := addAddr(l.Client, ifUplink, c, p.bits); err != nil {
				return err
			}
		}
		if err := defaultRoute(l.Client, p.wanR); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) wireFabric() error {
	if l.Opts.Fabric == FabricDual {
		return l.wireDual()
	}
	var br netlink.Link
	if l.Opts.Fabric == FabricL2 {
		var err error
		if br, err = l.bridge(ifBridge, func(p plan) netip.Addr { return p.fabR }); err != nil {
			return err
		}
	}
	for i, node := range l.Nodes {
		rIf := fmt.Sprintf("n%d", i+1)
		if err := veth(l.Router, rIf, l.Opts.NodeMTU, node, ifUplink, l.Opts.NodeMTU, br); err != nil {
			return err
		}
		for _, f := range []Family{IPv4, IPv6} {
			p := planFor(f)
			if l.Opts.Fabric == FabricRouted {
				if err := addAddr(l.Router, rIf, p.rtR[i], p.bits); err != nil {
					return err
				}
			}
			if err := addAddr(node, ifUplink, p.nodeUplink(l.Opts.Fabric, i), p.bits); err != nil {
				return err
			}
			if err := defaultRoute(node, p.routerFor(l.Opts.Fabric, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// bridge creates a bridge in the router with the router's addresses of
// both families on it.
func (l *Lab) bridge(name string, addr func(plan) netip.Addr) (netlink.Link, error) {
	b := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: l.Opts.NodeMTU}}
	if err := l.Router.nl.LinkAdd(b); err != nil {
		return nil, fmt.Errorf("%s: bridge %s: %w", l.Router.Name, name, err)
	}
	br, err := l.Router.nl.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if err := linkUp(l.Router, name); err != nil {
		return nil, err
	}
	for _, f := range []Family{IPv4, IPv6} {
		p := planFor(f)
		if err := addAddr(l.Router, name, addr(p), p.bits); err != nil {
			return nil, err
		}
	}
	return br, nil
}

// wireDual attaches every node to both segments (eth0 on br0, eth1 on br1)
// with a multipath default route over both, in each family.
func (l *Lab) wireDual() error {
	brA, err := l.bridge(ifBridge, func(p plan) netip.Addr { return p.fabR })
	if err != nil {
		return err
	}
	brB, err := l.bridge(ifBridge2, func(p plan) netip.Addr { return p.fabRB })
	if err != nil {
		return err
	}
	for i, node := range l.Nodes {
		mtu := l.Opts.NodeMTU
		if err := veth(l.Router, fmt.Sprintf("n%d", i+1), mtu, node, ifUplink, mtu, brA); err != nil {
			return err
		}
		if err := veth(l.Router, fmt.Sprintf("m%d", i+1), mtu, node, ifUplink2, mtu, brB); err != nil {
			return err
		}
		for _, f := range []Family{IPv4, IPv6} {
			p := planFor(f)
			if err := addAddr(node, ifUplink, p.fabN[i], p.bits); err != nil {
				return err
			}
			if err := addAddr(node, ifUplink2, p.fabNB[i], p.bits); err != nil {
				return err
			}
			if err := multipathDefault(node, []string{ifUplink, ifUplink2}, []netip.Addr{p.fabR, p.fabRB}); err != nil {
				return err
			}
		}
	}
	return nil
}

// multipathDefault adds a default route with one nexthop per uplink.
func multipathDefault(n *NS, links []string, gws []netip.Addr) error {
	var hops []*netlink.NexthopInfo
	for i, name := range links {
		lk, err := n.nl.LinkByName(name)
		if err != nil {
			return fmt.Errorf("%s: link %s: %w", n.Name, name, err)
		}
		hops = append(hops, &netlink.NexthopInfo{LinkIndex: lk.Attrs().Index, Gw: gws[i].AsSlice()})
	}
	bits := gws[0].BitLen()
	r := &netlink.Route{Dst: &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}, MultiPath: hops}
	if err := n.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("%s: multipath default via %v: %w", n.Name, gws, err)
	}
	return nil
}

// routeVIP gives the router an ECMP route to the VIP over all nodes, and
// two policy rules that make the outcome deterministic: TCP to the VIP goes
// to the owner, ICMP to the VIP (the router's own frag-needed / PTB about
// the owner's packets) to another node (on the dual-homed fabric, to its
// second uplink). That is what a hardware router that
// hashes the ICMP packet's own header does to a flow, every time.
func (l *Lab) routeVIP() error {
	for _, f := range []Family{IPv4, IPv6} {
		p := planFor(f)
		var hops []*netlink.NexthopInfo
		for i := range l.Nodes {
			hops = append(hops, &netlink.NexthopInfo{Gw: p.nodeUplink(l.Opts.Fabric, i).AsSlice()})
		}
		ecmp := &netlink.Route{Dst: hostNet(p.vip), MultiPath: hops}
		if err := l.Router.nl.RouteAdd(ecmp); err != nil {
			return fmt.Errorf("%s: ECMP route to %s: %w", l.Router.Name, p.vip, err)
		}
		pin := func(table int, gw netip.Addr) error {
			r := &netlink.Route{Dst: hostNet(p.vip), Gw: gw.AsSlice(), Table: table}
			if err := l.Router.nl.RouteAdd(r); err != nil {
				return fmt.Errorf("%s: route to %s in table %d: %w", l.Router.Name, p.vip, table, err)
			}
			return nil
		}
		if err := pin(tableTCP, p.nodeUplink(l.Opts.Fabric, l.Owner)); err != nil {
			return err
		}
		// On the dual-homed fabric: onto the second uplink.
		if err := pin(tableICMP, p.icmpHop(l.Opts.Fabric, l.ICMPTo)); err != nil {
			return err
		}
		icmp := unix.IPPROTO_ICMP
		if f == IPv6 {
			icmp = unix.IPPROTO_ICMPV6
		}
		for _, r := range []struct{ prio, proto, table int }{
			{100, unix.IPPROTO_TCP, tableTCP},
			{101, icmp, tableICMP},
		} {
			rule := netlink.NewRule()
			rule.Family = unix.AF_INET
			if f == IPv6 {
				rule.Family = unix.AF_INET6
			}
			rule.Priority = r.prio
			rule.Dst = hostNet(p.vip)
			rule.IPProto = r.proto
			rule.Table = r.table
			if err := l.Router.nl.RuleAdd(rule); err != nil {
				return fmt.Errorf("%s: rule ipproto %d to %s: %w", l.Router.Name, r.proto, p.vip, err)
			}
		}
	}
	return nil
}

// placeVIP puts the VIP on every node's loopback: local to each node (as
// with kube-proxy's IPVS mode) without answering ARP/ND on the fabric.
func (l *Lab) placeVIP() error {
	for _, node := range l.Nodes {
		for _, f := range []Family{IPv4, IPv6} {
			p := planFor(f)
			if err := addAddr(node, "lo", p.vip, p.hostBits()); err != nil {
				return err
			}
		}
	}
	return nil
}

// wirePods puts a pod behind each node and DNATs the VIP's port 80 to it.
func (l *Lab) wirePods() error {
	if l.Opts.Receiver != ReceiverPod {
		return nil
	}
	for i, node := range l.Nodes {
		pod := l.Pods[i]
		if err := veth(node, ifPod, l.Opts.NodeMTU, pod, ifUplink, l.Opts.NodeMTU, nil); err != nil {
			return err
		}
		for _, f := range []Family{IPv4, IPv6} {
			p := planFor(f)
			if err := addAddr(node, ifPod, p.podN[i], p.bits); err != nil {
				return err
			}
			if err := addAddr(pod, ifUplink, p.pod[i], p.bits); err != nil {
				return err
			}
			if err := defaultRoute(pod, p.podN[i]); err != nil {
				return err
			}
		}
		if err := installDNAT(node, planFor(IPv4).vip, planFor(IPv4).pod[i], planFor(IPv6).vip, planFor(IPv6).pod[i]); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the daemons and servers and removes every namespace of the
// lab. Safe to call more than once and on a partly built lab.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	daemons, servers := l.daemons, l.servers
	l.daemons, l.servers = nil, nil
	l.mu.Unlock()

	var errs []error
	for _, d := range daemons {
		if err := d.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range servers {
		_ = s.Close()
	}
	l.removeTunnelKey()
	for _, n := range l.all() {
		n.close()
	}
	if err := Teardown(l.Prefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Release forgets the lab's processes and handles without removing the
// namespaces (for -keep). The daemons are stopped first: they are children
// of this process.
func (l *Lab) Release() error {
	l.mu.Lock()
	l.closed = true
	daemons, servers := l.daemons, l.servers
	l.daemons, l.servers = nil, nil
	l.mu.Unlock()
	var errs []error
	for _, d := range daemons {
		errs = append(errs, d.Stop())
	}
	for _, s := range servers {
		_ = s.Close()
	}
	for _, n := range l.all() {
		n.close()
	}
	return errors.Join(errs...)
}

// FlowNS is the namespace that holds the flow's socket: the owner node, or
// the pod behind it.
func (l *Lab) FlowNS() *NS {
	if l.Opts.Receiver == ReceiverPod {
		return l.Pods[l.Owner]
	}
	return l.Nodes[l.Owner]
}

// VIP returns the Service VIP of the family.
func VIP(f Family) netip.Addr { return planFor(f).vip }

// ClientAddr returns the client's i-th address of the family.
func ClientAddr(f Family, i int) netip.Addr { return planFor(f).clients[i] }

// peerIndex is the node that the j-th address of Peers(self) belongs to.
func (l *Lab) peerIndex(self, j int) int {
	i := j % (len(l.Nodes) - 1)
	if i >= self {
		i++
	}
	return i
}

// Peers returns the addresses of every node but self on the lab's fabric,
// both families (the --peers of node self).
func (l *Lab) Peers(self int) []netip.Addr {
	var out []netip.Addr
	for _, f := range []Family{IPv4, IPv6} {
		p := planFor(f)
		for i := range l.Nodes {
			if i != self {
				out = append(out, p.nodeUplink(l.Opts.Fabric, i))
			}
		}
	}
	return out
}

// NodeAddr is node i's own address of family f on the lab's fabric (what
// a Kubernetes Node would report as its InternalIP, status.hostIP).
func (l *Lab) NodeAddr(f Family, i int) netip.Addr {
	return planFor(f).nodeUplink(l.Opts.Fabric, i)
}
