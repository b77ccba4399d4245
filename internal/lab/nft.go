package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// labTable is the name of the nftables table the lab itself installs (pod
// DNAT). Anything else found in a node belongs to go-pmtud.
const labTable = "golab"

// installDNAT adds, in node's namespace, what kube-proxy would: traffic to
// VIP:80 is DNATed to the pod, and conntrack un-NATs the replies (and the
// ICMP errors related to them). Equivalent to:
//
//	nft add table ip golab
//	nft add chain ip golab prerouting '{ type nat hook prerouting priority dstnat; }'
//	nft add rule ip golab prerouting ip daddr VIP4 tcp dport 80 dnat to POD4:80
//
// and the same for ip6.
func installDNAT(node *NS, vip4, pod4, vip6, pod6 netip.Addr) error {
	c, err := nftables.New(nftables.WithNetNSFd(node.Fd()))
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", node.Name, err)
	}
	for _, x := range [][2]netip.Addr{{vip4, pod4}, {vip6, pod6}} {
		addDNAT(c, nftables.ChainHookPrerouting, netip.AddrPortFrom(x[0], 80), netip.AddrPortFrom(x[1], 80))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: install DNAT: %w", node.Name, err)
	}
	return nil
}

// InstallClusterIP gives node i what kube-proxy gives a node for a
// ClusterIP Service reached from the node itself (hostNetwork pods, the
// kubelet): TCP to service is DNATed to backend in the output hook.
// Equivalent to:
//
//	nft add chain ip golab output '{ type nat hook output priority dstnat; }'
//	nft add rule ip golab output ip daddr SERVICE tcp dport PORT dnat to BACKEND
func (l *Lab) InstallClusterIP(i int, service, backend netip.AddrPort) error {
	node := l.Nodes[i]
	c, err := nftables.New(nftables.WithNetNSFd(node.Fd()))
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", node.Name, err)
	}
	addDNAT(c, nftables.ChainHookOutput, service, backend)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: install ClusterIP DNAT: %w", node.Name, err)
	}
	return nil
}

// addDNAT queues, in the lab's table of to's family, a nat chain on hook
// with the rule DNATing TCP to "to" to "dest".
func addDNAT(c *nftables.Conn, hook *nftables.ChainHook, to, dest netip.AddrPort) {
	fam, nfproto, daddrOff := nftables.TableFamilyIPv4, uint32(unix.NFPROTO_IPV4), uint32(16)
	if to.Addr().Is6() {
		fam, nfproto, daddrOff = nftables.TableFamilyIPv6, unix.NFPROTO_IPV6, 24
	}
	name := map[*nftables.ChainHook]string{nftables.ChainHookPrerouting: "prerouting", nftables.ChainHookOutput: "output"}[hook]
	t := c.AddTable(&nftables.Table{Family: fam, Name: labTable})
	ch := c.AddChain(&nftables.Chain{
		Name:     name,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  hook,
		Priority: nftables.ChainPriorityNATDest,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddrOff, Len: uint32(to.Addr().BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: to.Addr().AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, to.Port())},
		&expr.Immediate{Register: 1, Data: dest.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, dest.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: nfproto, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
}

// operatorTable is the table of InstallOperatorRules.
const operatorTable = "golab-operator"

// InstallOperatorRules gives every node the rule a hurried operator would
// write for go-pmtud --firewall=none: NFLOG every frag-needed and
// packet-too-big arriving on the uplink, with no loop guard (relayed copies
// are logged too) and the kernel's default batching. Equivalent to:
//
//	nft add table inet golab-operator
//	nft add chain inet golab-operator pre '{ type filter hook prerouting priority raw; }'
//	nft add rule inet golab-operator pre iifname eth0 icmp type destination-unreachable icmp code frag-needed log group 33
//	nft add rule inet golab-operator pre iifname eth0 icmpv6 type packet-too-big log group 33
func (l *Lab) InstallOperatorRules(group uint16) error {
	for _, n := range l.Nodes {
		if err := installOperatorRule(n, group); err != nil {
			return err
		}
	}
	return nil
}

func installOperatorRule(n *NS, group uint16) error {
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", n.Name, err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: operatorTable})
	ch := c.AddChain(&nftables.Chain{
		Name:     "pre",
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
	})
	ifname := make([]byte, unix.IFNAMSIZ)
	copy(ifname, ifUplink)
	for _, x := range []struct {
		nfproto, l4 byte
		typeCode    []byte
	}{
		{unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, []byte{3, 4}},
		{unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, []byte{2, 0}},
	} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{x.nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{x.l4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: x.typeCode},
			&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: group},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: install operator rule: %w", n.Name, err)
	}
	return nil
}

// Tables lists "family name" of every nftables table in n.
func (n *NS) Tables() ([]string, error) {
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
	if err != nil {
		return nil, err
	}
	return listTables(c)
}

// RootPmtudTables lists tables in the root namespace whose name mentions
// pmtud: there must never be any (the lab only reads the root namespace).
func RootPmtudTables() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	ts, err := listTables(c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if strings.Contains(t, "pmtud") {
			out = append(out, t)
		}
	}
	return out, nil
}

func listTables(c *nftables.Conn) ([]string, error) {
	ts, err := c.ListTables()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%s %s", familyName(t.Family), t.Name))
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family%d", f)
}

// DaemonTables lists the tables in node i that the lab did not install
// (go-pmtud's own). After the daemons stop there must be none.
func (l *Lab) DaemonTables(i int) ([]string, error) {
	ts, err := l.Nodes[i].Tables()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if !strings.HasSuffix(t, " "+labTable) && !strings.HasSuffix(t, " "+operatorTable) {
			out = append(out, t)
		}
	}
	return out, nil
}
