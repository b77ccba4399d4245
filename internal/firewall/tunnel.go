package firewall

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The tunnel receiver's filter: four sets and four rules in the same chain,
// after the ICMP rules (they only drop, so that order does not matter), and
// two more of each with Config.TunnelSourceRate (last, below):
//
//	nft add set inet go-pmtud tunnel_peers4 '{ type ipv4_addr; }'
//	nft add set inet go-pmtud tunnel_peers6 '{ type ipv6_addr; }'
//	nft add set inet go-pmtud tunnel_addrs4 '{ type ipv4_addr; }'
//	nft add set inet go-pmtud tunnel_addrs6 '{ type ipv6_addr; }'
//	nft add rule inet go-pmtud prerouting udp dport P fib daddr type local ip saddr != @tunnel_peers4 counter drop
//	nft add rule inet go-pmtud prerouting udp dport P fib daddr type local ip6 saddr != @tunnel_peers6 counter drop
//	nft add rule inet go-pmtud prerouting udp dport P fib daddr type local ip daddr != @tunnel_addrs4 counter drop
//	nft add rule inet go-pmtud prerouting udp dport P fib daddr type local ip6 daddr != @tunnel_addrs6 counter drop
//
// `fib daddr type local` limits the rules to datagrams for this host: UDP
// to port P that the node only forwards (to a pod, to another host) is not
// ours to judge and passes untouched.
// With Config.TunnelSourceRate, two more rules follow, in nft's words
//
//	nft add set inet go-pmtud tunnel_rate4 '{ type ipv4_addr; size 16384; flags dynamic,timeout; timeout 1m; }'
//	nft add rule inet go-pmtud prerouting udp dport P fib daddr type local update @tunnel_rate4 { ip saddr limit rate over R/second burst B packets } counter drop
//
// (and tunnel_rate6 with ip6 saddr): a peer address sending faster than R
// is cut here, so it cannot fill the socket buffer all peers share. Only
// peer sources reach these rules, so the set holds peers only; were it
// full, the update fails, the rule stops, and the datagram passes.
//
// So a datagram reaches the receiver's socket only from a current peer and
// to one of the node's own addresses (SetTunnelAddrs: not a VIP), and
// forged or stray datagrams cost no more than a set lookup. At raw
// priority the drop comes before conntrack: no state is created for them.
// Both sets start empty, so the port is closed until the daemon fills them.
const (
	tunnelPeers4   = "tunnel_peers4"
	tunnelPeers6   = "tunnel_peers6"
	tunnelAddrs4   = "tunnel_addrs4"
	tunnelAddrs6   = "tunnel_addrs6"
	commentTPeers4 = "go-pmtud: tunnel port, IPv4 sources other than peers dropped"
	commentTPeers6 = "go-pmtud: tunnel port, IPv6 sources other than peers dropped"
	commentTAddrs4 = "go-pmtud: tunnel port, IPv4 destinations other than the node's own dropped"
	commentTAddrs6 = "go-pmtud: tunnel port, IPv6 destinations other than the node's own dropped"
	tunnelRate4    = "tunnel_rate4"
	tunnelRate6    = "tunnel_rate6"
	commentTRate4  = "go-pmtud: tunnel port, an IPv4 peer over its rate dropped"
	commentTRate6  = "go-pmtud: tunnel port, an IPv6 peer over its rate dropped"
)

// tunnelSetIDs name the sets within one batch (1 and 2 are the sources sets).
var tunnelSetIDs = map[string]uint32{tunnelPeers4: 3, tunnelPeers6: 4, tunnelAddrs4: 5, tunnelAddrs6: 6, tunnelRate4: 7, tunnelRate6: 8}

func tunnelSet(table *nftables.Table, name string) *nftables.Set {
	key := nftables.TypeIPAddr
	if name == tunnelPeers6 || name == tunnelAddrs6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: table, ID: tunnelSetIDs[name], Name: name, KeyType: key}
}

func tunnelSets(cfg Config, table *nftables.Table) []*nftables.Set {
	if cfg.TunnelPort == 0 {
		return nil
	}
	out := []*nftables.Set{tunnelSet(table, tunnelPeers4), tunnelSet(table, tunnelPeers6),
		tunnelSet(table, tunnelAddrs4), tunnelSet(table, tunnelAddrs6)}
	if cfg.TunnelSourceRate == 0 {
		return out
	}
	return append(out, sourceSet(table, tunnelSetIDs[tunnelRate4], tunnelRate4, nftables.TypeIPAddr),
		sourceSet(table, tunnelSetIDs[tunnelRate6], tunnelRate6, nftables.TypeIP6Addr))
}

// tunnelDropExprs is `udp dport P fib daddr type local <ip|ip6> <saddr|daddr> != @set counter drop`.
func tunnelDropExprs(port uint16, v6, dst bool, set string) []expr.Any {
	out, off, n := tunnelPortExprs(port, v6)
	if dst {
		off += n // daddr follows saddr in both headers
	}
	return append(out,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: set, Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop})
}

// tunnelRateExprs is `udp dport P fib daddr type local update @set
// { <ip|ip6> saddr limit rate over R/second burst B packets } counter drop`:
// the limit matches only over the rate, so the rule drops the excess.
func tunnelRateExprs(cfg Config, v6 bool, set string) []expr.Any {
	out, off, n := tunnelPortExprs(cfg.TunnelPort, v6)
	burst := cfg.TunnelSourceBurst
	if burst == 0 {
		burst = cfg.TunnelSourceRate
	}
	out = append(out, perSourceLimit(set, off, n, cfg.TunnelSourceRate, burst, true)...)
	return append(out, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// tunnelPortExprs matches `meta nfproto <ipv4|ipv6> udp dport P fib daddr
// type local`, and gives the source address's offset and length.
func tunnelPortExprs(port uint16, v6 bool) (out []expr.Any, srcOff, addrLen uint32) {
	nfproto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if v6 {
		nfproto, off, n = unix.NFPROTO_IPV6, 8, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}, off, n
}

func tunnelRules(cfg Config, table *nftables.Table, chain *nftables.Chain) []*nftables.Rule {
	if cfg.TunnelPort == 0 {
		return nil
	}
	p := cfg.TunnelPort
	mk := func(v6, dst bool, set, comment string) *nftables.Rule {
		return &nftables.Rule{Table: table, Chain: chain, Exprs: tunnelDropExprs(p, v6, dst, set), UserData: commentData(comment)}
	}
	out := []*nftables.Rule{
		mk(false, false, tunnelPeers4, commentTPeers4),
		mk(true, false, tunnelPeers6, commentTPeers6),
		mk(false, true, tunnelAddrs4, commentTAddrs4),
		mk(true, true, tunnelAddrs6, commentTAddrs6),
	}
	if cfg.TunnelSourceRate == 0 {
		return out
	}
	return append(out,
		&nftables.Rule{Table: table, Chain: chain, Exprs: tunnelRateExprs(cfg, false, tunnelRate4), UserData: commentData(commentTRate4)},
		&nftables.Rule{Table: table, Chain: chain, Exprs: tunnelRateExprs(cfg, true, tunnelRate6), UserData: commentData(commentTRate6)})
}

// SetTunnelPeers makes the peer sets hold exactly addrs (invalid ones
// skipped), replacing their content in one atomic batch, and remembers them
// for the next Install. It is an error without Config.TunnelPort or before
// Install.
func (t *Table) SetTunnelPeers(addrs []netip.Addr) error {
	return t.setTunnel(addrs, tunnelPeers4, tunnelPeers6, &t.tunnelPeers)
}

// SetTunnelAddrs does the same for the node's own addresses: the only
// destinations the tunnel port is reachable on.
func (t *Table) SetTunnelAddrs(addrs []netip.Addr) error {
	return t.setTunnel(addrs, tunnelAddrs4, tunnelAddrs6, &t.tunnelAddrs)
}

func (t *Table) setTunnel(addrs []netip.Addr, name4, name6 string, keep *[]netip.Addr) error {
	if t.cfg.TunnelPort == 0 {
		return fmt.Errorf("firewall: no tunnel port configured")
	}
	clean := normAddrs(addrs)
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.conn()
	if err != nil {
		return err
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	for _, name := range []string{name4, name6} {
		set := tunnelSet(table, name)
		c.FlushSet(set)
		if err := c.SetAddElements(set, elements(clean, name == name6)); err != nil {
			return fmt.Errorf("firewall: set %s: %w", name, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: updating %s/%s: %w", name4, name6, err)
	}
	*keep = clean
	return nil
}

// addTunnelElements queues the remembered elements into an Install batch.
func (t *Table) addTunnelElements(c *nftables.Conn, table *nftables.Table) error {
	if t.cfg.TunnelPort == 0 {
		return nil
	}
	for _, s := range []struct {
		name  string
		addrs []netip.Addr
	}{{tunnelPeers4, t.tunnelPeers}, {tunnelPeers6, t.tunnelPeers}, {tunnelAddrs4, t.tunnelAddrs}, {tunnelAddrs6, t.tunnelAddrs}} {
		name, addrs := s.name, s.addrs
		v6 := name == tunnelPeers6 || name == tunnelAddrs6
		if els := elements(addrs, v6); len(els) > 0 {
			if err := c.SetAddElements(tunnelSet(table, name), els); err != nil {
				return err
			}
		}
	}
	return nil
}

func normAddrs(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func elements(addrs []netip.Addr, v6 bool) []nftables.SetElement {
	var out []nftables.SetElement
	for _, a := range addrs {
		if a.Is6() == v6 {
			out = append(out, nftables.SetElement{Key: a.AsSlice()})
		}
	}
	return out
}

// TunnelDropCounts is how many datagrams the tunnel filter dropped since
// Install, both families summed, by rule.
type TunnelDropCounts struct {
	NotPeer     uint64 // from an address that is not a peer's
	NotNodeAddr uint64 // to an address that is not the node's own
	PeerRate    uint64 // from a peer address over TunnelSourceRate
}

// TunnelDrops reads the tunnel rules' counters.
func (t *Table) TunnelDrops() (TunnelDropCounts, error) {
	var n TunnelDropCounts
	c, err := t.conn()
	if err != nil {
		return n, err
	}
	table, chain, _ := objects(t.cfg)
	rules, err := c.GetRules(table, chain)
	if err != nil {
		return n, fmt.Errorf("firewall: list rules: %w", err)
	}
	for _, r := range rules {
		name, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				switch name {
				case commentTPeers4, commentTPeers6:
					n.NotPeer += ctr.Packets
				case commentTAddrs4, commentTAddrs6:
					n.NotNodeAddr += ctr.Packets
				case commentTRate4, commentTRate6:
					n.PeerRate += ctr.Packets
				}
			}
		}
	}
	return n, nil
}

// sameExprs compares rule expressions as Verify needs: counters' values
// are the kernel's and change, only their presence counts.
func sameExprs(got, want []expr.Any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if _, ok := got[i].(*expr.Counter); ok {
			if _, ok := want[i].(*expr.Counter); !ok {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			return false
		}
	}
	return true
}
