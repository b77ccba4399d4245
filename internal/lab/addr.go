package lab

import (
	"fmt"
	"net/netip"
)

// Family selects the IP version of a scenario.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// Fabric is how the nodes reach each other and the router.
type Fabric string

const (
	// FabricL2: nodes and the router's node side share one bridge (one subnet).
	FabricL2 Fabric = "l2"
	// FabricRouted: each node sits in its own subnet on its own link to the
	// router, so a frame-level relay cannot reach the other nodes.
	FabricRouted Fabric = "routed"
	// FabricDual: dual-homed nodes, as on bare-metal ECMP clusters with two
	// top-of-rack switches: every node on two segments (eth0 on br0, eth1
	// on br1 of the router), a multipath default route over both, and the
	// router's ICMP errors arriving on the second uplink (eth1) of a node
	// that does not own the flow.
	FabricDual Fabric = "dual"
)

// Receiver is where the HTTP server behind the VIP lives.
type Receiver string

const (
	// ReceiverNode: a socket on the node itself (the VIP is local).
	ReceiverNode Receiver = "node"
	// ReceiverPod: a server in a pod namespace behind the node, reached
	// through an nftables DNAT of the VIP (as kube-proxy does), so a relayed
	// message must be delivered by conntrack's related-ICMP handling.
	ReceiverPod Receiver = "pod"
)

// Addressing plan. Every lab has namespaces of its own, so concurrent labs
// reuse the same addresses without conflict.
//
//	WAN (client - router)         10.99.0.0/24        fd00:99::/64
//	shared L2 fabric              10.99.1.0/24        fd00:99:1::/64
//	dual-homed: second segment    10.99.2.0/24        fd00:99:2::/64
//	routed fabric, node i         10.99.1i.0/24       fd00:99:1i::/64
//	pod behind node i             10.244.i.0/24       fd00:244:i::/64
//	Service VIP                   10.96.100.1         fd00:96::100
const NumNodes = 3

// NumClientAddrs is how many addresses the client holds (for parallel
// flows from distinct sources).
const NumClientAddrs = 20

var (
	mtuNarrow = 1400
	mtuJumbo  = 9000
)

func p4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

func p6(s string) netip.Addr { return netip.MustParseAddr(s) }

// plan holds the addresses of one family.
type plan struct {
	family  Family
	bits    int // prefix length of the link subnets
	vip     netip.Addr
	wanR    netip.Addr   // router on the WAN
	clients []netip.Addr // client addresses on the WAN; [0] is the primary
	fabR    netip.Addr   // router on the shared L2 fabric
	fabN    [NumNodes]netip.Addr
	fabRB   netip.Addr           // router on the dual-homed fabric's second segment
	fabNB   [NumNodes]netip.Addr // node on the second segment (eth1)
	rtR     [NumNodes]netip.Addr // router on routed link i
	rtN     [NumNodes]netip.Addr // node on routed link i
	podN    [NumNodes]netip.Addr // node on its pod link
	pod     [NumNodes]netip.Addr // the pod
}

func planFor(f Family) plan {
	p := plan{family: f}
	if f == IPv4 {
		p.bits = 24
		p.vip = p4(10, 96, 100, 1)
		p.wanR = p4(10, 99, 0, 1)
		for i := 0; i < NumClientAddrs; i++ {
			p.clients = append(p.clients, p4(10, 99, 0, byte(100+i)))
		}
		p.fabR = p4(10, 99, 1, 1)
		p.fabRB = p4(10, 99, 2, 1)
		for i := 0; i < NumNodes; i++ {
			p.fabN[i] = p4(10, 99, 1, byte(11+i))
			p.fabNB[i] = p4(10, 99, 2, byte(11+i))
			p.rtR[i] = p4(10, 99, byte(11+i), 1)
			p.rtN[i] = p4(10, 99, byte(11+i), 2)
			p.podN[i] = p4(10, 244, byte(1+i), 1)
			p.pod[i] = p4(10, 244, byte(1+i), 2)
		}
		return p
	}
	p.bits = 64
	p.vip = p6("fd00:96::100")
	p.wanR = p6("fd00:99::1")
	for i := 0; i < NumClientAddrs; i++ {
		p.clients = append(p.clients, p6(fmt.Sprintf("fd00:99::%d", 100+i)))
	}
	p.fabR = p6("fd00:99:1::1")
	p.fabRB = p6("fd00:99:2::1")
	for i := 0; i < NumNodes; i++ {
		p.fabN[i] = p6(fmt.Sprintf("fd00:99:1::%d", 11+i))
		p.fabNB[i] = p6(fmt.Sprintf("fd00:99:2::%d", 11+i))
		p.rtR[i] = p6(fmt.Sprintf("fd00:99:%d::1", 11+i))
		p.rtN[i] = p6(fmt.Sprintf("fd00:99:%d::2", 11+i))
		p.podN[i] = p6(fmt.Sprintf("fd00:244:%d::1", 1+i))
		p.pod[i] = p6(fmt.Sprintf("fd00:244:%d::2", 1+i))
	}
	return p
}

// nodeUplink is node i's address toward the router on the given fabric.
func (p plan) nodeUplink(fab Fabric, i int) netip.Addr {
	if fab == FabricRouted {
		return p.rtN[i]
	}
	return p.fabN[i]
}

// icmpHop is where the router sends its ICMP errors toward the VIP when
// they are pinned on node i: its second uplink on the dual-homed fabric.
func (p plan) icmpHop(fab Fabric, i int) netip.Addr {
	if fab == FabricDual {
		return p.fabNB[i]
	}
	return p.nodeUplink(fab, i)
}

// routerFor is the router's address that node i uses as its gateway.
func (p plan) routerFor(fab Fabric, i int) netip.Addr {
	if fab == FabricRouted {
		return p.rtR[i]
	}
	return p.fabR
}

func (p plan) hostBits() int {
	if p.family == IPv4 {
		return 32
	}
	return 128
}
