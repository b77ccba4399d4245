// Package firewall installs, verifies and removes the nftables table that
// feeds go-pmtud: it copies every ICMPv4 fragmentation-needed (RFC 792,
// RFC 1191) and ICMPv6 packet-too-big (RFC 4443 section 3.2) message that
// arrives on the uplink to an NFLOG group, and accepts the packet unchanged.
//
// The whole table is go-pmtud's: nothing else is put in it and it is replaced
// as a unit, so an operator's own tables are never touched.
package firewall

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of the inet table go-pmtud owns.
const TableName = "go-pmtud"

// ChainName is the name of the base chain in TableName.
const ChainName = "prerouting"

// Rule comments, also used to tell the rules apart when verifying.
const (
	comment4 = "go-pmtud: ICMPv4 frag-needed to nflog"
	comment6 = "go-pmtud: ICMPv6 packet-too-big to nflog"
)

// Config says which packets to copy and where.
type Config struct {
	// Ifaces are the uplinks the messages arrive on: one pair of rules
	// (IPv4, IPv6) each. Empty matches every interface. A trailing "*"
	// matches a prefix, as in nft ("eth*").
	Ifaces []string
	// Group is the NFLOG group the listener binds.
	Group uint16
	// RatePerSecond caps how many messages per second and family are copied
	// to userspace; the excess is still accepted (the local kernel needs its
	// own PTBs), only not logged. 0 means no limit.
	RatePerSecond uint32
	// Burst is the limit's bucket size in packets; 0 means RatePerSecond.
	Burst uint32
	// SourceRatePerSecond caps, before RatePerSecond, how many messages
	// per second one router (outer source address) gets copied, with a
	// bucket of the same size. It keeps one flooding source from spending
	// the whole RatePerSecond, so other routers are still heard. 0 means
	// no per-source limit. Sources are tracked in a dynamic set of at most
	// SourceSetSize addresses per family, each forgotten SourceTimeout
	// after its last message; while the set is full, new sources are not
	// copied (only when spoofed sources flood, whom RatePerSecond bounds).
	SourceRatePerSecond uint32
	// TunnelPort, if not 0, adds the tunnel receiver's filter (tunnel.go):
	// UDP to this port is dropped unless it comes from a peer and goes to
	// one of the node's own addresses.
	TunnelPort uint16
	// TunnelSourceRate, with TunnelPort, caps in the kernel how many
	// datagrams per second one peer address gets to the receiver's socket,
	// beyond a bucket of TunnelSourceBurst (0: TunnelSourceRate). One
	// flooding (or forged) peer address then cannot fill the socket buffer
	// that every peer's relays share. 0 means no limit.
	TunnelSourceRate, TunnelSourceBurst uint32
}

// The per-source sets: bounded kernel memory (roughly 200 bytes per
// element), and a timeout long enough that a router keeps its place while
// it sends at least once a minute.
const (
	SourceSetSize = 16384
	SourceTimeout = time.Minute
	sourceSet4    = "sources4"
	sourceSet6    = "sources6"
)

func (c Config) validate() error {
	for _, iface := range c.Ifaces {
		if iface == "" || len(iface) >= unix.IFNAMSIZ {
			return fmt.Errorf("firewall: interface name %q is empty or longer than %d bytes", iface, unix.IFNAMSIZ-1)
		}
		if iface == "*" {
			return fmt.Errorf("firewall: interface %q: leave the list empty to match every interface", iface)
		}
	}
	return nil
}

// ifaceExprs matches the input interface name, as `iifname "eth0"`.
// An exact match compares the zero-padded IFNAMSIZ bytes, as nft does; a
// prefix match ("eth*") compares only the prefix.
func ifaceExprs(iface string) []expr.Any {
	if iface == "" {
		return nil
	}
	var data []byte
	if prefix, ok := strings.CutSuffix(iface, "*"); ok {
		data = []byte(prefix)
	} else {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, iface)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}

// icmpExprs matches `meta nfproto <nfproto> meta l4proto <l4proto>` and the
// ICMP type and code bytes. The kernel does not evaluate transport-header
// payload on non-first fragments, so a fragment cannot fake a match.
func icmpExprs(nfproto, l4proto, typ, code byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{code}},
	}
}

// sourceExprs is the optional per-source limit, as
//
//	update @sources4 { ip saddr limit rate R/second burst R packets }
//
// (ip6 saddr and @sources6 for IPv6): the dynset expression breaks the rule
// when the source's own bucket is empty, or when the set is full.
func sourceExprs(cfg Config, v6 bool) []expr.Any {
	if cfg.SourceRatePerSecond == 0 {
		return nil
	}
	off, n, set := uint32(12), uint32(4), sourceSet4 // IPv4 source address
	if v6 {
		off, n, set = 8, 16, sourceSet6
	}
	return perSourceLimit(set, off, n, cfg.SourceRatePerSecond, cfg.SourceRatePerSecond, false)
}

// perSourceLimit is `update @set { <saddr at off, n bytes> limit rate
// [over] R/second burst B packets }`: a bucket per source address in a
// dynamic set (sourceSet). Without over the rule breaks when the source's
// bucket is empty; with over, while it is not. Either way it breaks when
// the set is full.
func perSourceLimit(set string, off, n, rate, burst uint32, over bool) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Dynset{
			SrcRegKey: 1,
			SetName:   set,
			Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Limit{
				Type:  expr.LimitTypePkts,
				Rate:  uint64(rate),
				Unit:  expr.LimitTimeSecond,
				Burst: burst,
				Over:  over,
			}},
		},
	}
}

// logExprs is the optional `limit rate R/second burst B packets` followed by
// `log group N queue-threshold 1`. The threshold makes the kernel hand every
// message to userspace at once instead of batching it for up to a second.
func logExprs(cfg Config) []expr.Any {
	var out []expr.Any
	if cfg.RatePerSecond > 0 {
		burst := cfg.Burst
		if burst == 0 {
			burst = cfg.RatePerSecond
		}
		out = append(out, &expr.Limit{
			Type:  expr.LimitTypePkts,
			Rate:  uint64(cfg.RatePerSecond),
			Unit:  expr.LimitTimeSecond,
			Burst: burst,
		})
	}
	return append(out, &expr.Log{
		Key:        1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD,
		Group:      cfg.Group,
		QThreshold: 1,
	})
}

// rule4Exprs is the IPv4 rule, equivalent to
//
//	nft add rule inet go-pmtud prerouting iifname "eth0" \
//	    icmp type destination-unreachable icmp code frag-needed \
//	    [update @sources4 { ip saddr limit rate S/second burst S packets }] \
//	    [limit rate R/second burst B packets] log group 33 queue-threshold 1
func rule4Exprs(cfg Config, iface string) []expr.Any {
	out := ifaceExprs(iface)
	out = append(out, icmpExprs(unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, 3, 4)...)
	out = append(out, sourceExprs(cfg, false)...)
	return append(out, logExprs(cfg)...)
}

// rule6Exprs is the IPv6 rule, equivalent to
//
//	nft add rule inet go-pmtud prerouting iifname "eth0" \
//	    icmpv6 type packet-too-big icmpv6 code 0 \
//	    [update @sources6 { ip6 saddr limit rate S/second burst S packets }] \
//	    [limit rate R/second burst B packets] log group 33 queue-threshold 1
func rule6Exprs(cfg Config, iface string) []expr.Any {
	out := ifaceExprs(iface)
	out = append(out, icmpExprs(unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, 2, 0)...)
	out = append(out, sourceExprs(cfg, true)...)
	return append(out, logExprs(cfg)...)
}

// objects returns the table, chain and rules for cfg, equivalent to
//
//	nft add table inet go-pmtud
//	nft add chain inet go-pmtud prerouting \
//	    '{ type filter hook prerouting priority raw; policy accept; }'
//
// followed by the two rules above for each uplink. Raw priority (-300) runs before conntrack,
// so the copy is taken whatever conntrack or later chains decide.
// With a per-source limit, the two sets come first:
//
//	nft add set inet go-pmtud sources4 '{ type ipv4_addr; size 16384; flags dynamic,timeout; timeout 1m; }'
//	nft add set inet go-pmtud sources6 '{ type ipv6_addr; size 16384; flags dynamic,timeout; timeout 1m; }'
func objects(cfg Config) (*nftables.Table, *nftables.Chain, []*nftables.Rule) {
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	policy := nftables.ChainPolicyAccept
	chain := &nftables.Chain{
		Name:     ChainName,
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
		Policy:   &policy,
	}
	ifaces := cfg.Ifaces
	if len(ifaces) == 0 {
		ifaces = []string{""} // every interface
	}
	var rules []*nftables.Rule
	for _, iface := range ifaces {
		rules = append(rules,
			&nftables.Rule{Table: table, Chain: chain, Exprs: rule4Exprs(cfg, iface), UserData: commentData(comment4)},
			&nftables.Rule{Table: table, Chain: chain, Exprs: rule6Exprs(cfg, iface), UserData: commentData(comment6)})
	}
	return table, chain, append(rules, tunnelRules(cfg, table, chain)...)
}

// sets returns the per-source sets, or nil without a per-source limit.
func sets(cfg Config, table *nftables.Table) []*nftables.Set {
	if cfg.SourceRatePerSecond == 0 {
		return tunnelSets(cfg, table)
	}
	// Fixed IDs (they only name the set within one batch): the library
	// would otherwise draw them from a process-wide counter.
	return append([]*nftables.Set{sourceSet(table, 1, sourceSet4, nftables.TypeIPAddr), sourceSet(table, 2, sourceSet6, nftables.TypeIP6Addr)},
		tunnelSets(cfg, table)...)
}

// sourceSet is a dynamic set of source addresses for perSourceLimit:
// bounded (SourceSetSize), each address forgotten SourceTimeout after it
// was last seen.
func sourceSet(table *nftables.Table, id uint32, name string, key nftables.SetDatatype) *nftables.Set {
	return &nftables.Set{Table: table, ID: id, Name: name, KeyType: key, Dynamic: true,
		HasTimeout: true, Timeout: SourceTimeout, Size: SourceSetSize}
}

func commentData(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}
