package lab

import (
	"fmt"
	"strconv"
	"strings"
)

// PMTU is the path MTU that n's kernel holds toward dst: the mtu of the
// cached route (a PMTU exception), or 0 when there is none and the link MTU
// applies. It is `ip route get DST` run in n, through a netlink handle.
func (n *NS) PMTU(dst Family, client int) (int, error) {
	a := ClientAddr(dst, client)
	rs, err := n.nl.RouteGet(a.AsSlice())
	if err != nil {
		return 0, fmt.Errorf("%s: route get %s: %w", n.Name, a, err)
	}
	if len(rs) == 0 {
		return 0, fmt.Errorf("%s: no route to %s", n.Name, a)
	}
	return rs[0].MTU, nil
}

// FlowPMTU is the PMTU toward the client's address src where the flow
// lives (owner node or its pod).
func (l *Lab) FlowPMTU(f Family, src int) (int, error) { return l.FlowNS().PMTU(f, src) }

// RouterPTBs counts the frag-needed (IPv4) or packet-too-big (IPv6)
// messages the router has sent so far. IPv4 counts every destination
// unreachable, which in the lab are all frag-needed.
func (l *Lab) RouterPTBs(f Family) (int64, error) {
	if f == IPv4 {
		return l.Router.snmp("/proc/thread-self/net/snmp", "Icmp", "OutDestUnreachs")
	}
	return l.Router.snmp("/proc/thread-self/net/snmp6", "", "Icmp6OutPktTooBigs")
}

// snmp reads one counter of the namespace's /proc/net/snmp (two lines per
// group: names, values) or /proc/net/snmp6 (group "": "name value" lines).
func (n *NS) snmp(path, group, name string) (int64, error) {
	s, err := n.readFile(path)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(s, "\n")
	if group == "" {
		for _, ln := range lines {
			f := strings.Fields(ln)
			if len(f) == 2 && f[0] == name {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
		return 0, fmt.Errorf("%s: %s not in %s", n.Name, name, path)
	}
	for i := 0; i+1 < len(lines); i++ {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(h) == 0 || h[0] != group+":" || len(v) != len(h) || v[0] != group+":" {
			continue
		}
		for j := range h {
			if h[j] == name {
				return strconv.ParseInt(v[j], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: %s %s not in %s", n.Name, group, name, path)
}

// PTBsIn counts the frag-needed (IPv4: every destination unreachable) or
// packet-too-big messages n has received.
func (n *NS) PTBsIn(f Family) (int64, error) {
	if f == IPv4 {
		return n.snmp("/proc/thread-self/net/snmp", "Icmp", "InDestUnreachs")
	}
	return n.snmp("/proc/thread-self/net/snmp6", "", "Icmp6InPktTooBigs")
}

// nodesPTBsIn is PTBsIn of every node (-1 where unreadable).
func (l *Lab) nodesPTBsIn(f Family) [NumNodes]int64 {
	var out [NumNodes]int64
	for i, n := range l.Nodes {
		v, err := n.PTBsIn(f)
		if err != nil {
			v = -1
		}
		out[i] = v
	}
	return out
}

// ConntrackICMPErrors sums the "icmp_error" column of n's conntrack
// statistics (every CPU): ICMP errors conntrack refused to relate to a
// connection, e.g. because the outer destination is not the quoted
// packet's source (nf_conntrack_inet_error). 0 without conntrack.
func (n *NS) ConntrackICMPErrors() (int64, error) {
	s, err := n.readFile("/proc/thread-self/net/stat/nf_conntrack")
	if err != nil {
		return 0, nil // conntrack not loaded in this namespace
	}
	lines := strings.Split(s, "\n")
	if len(lines) < 2 {
		return 0, nil
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "icmp_error" {
			col = i
		}
	}
	if col < 0 {
		return 0, fmt.Errorf("%s: no icmp_error column in nf_conntrack stats", n.Name)
	}
	var sum int64
	for _, ln := range lines[1:] {
		f := strings.Fields(ln)
		if col < len(f) {
			v, err := strconv.ParseInt(f[col], 16, 64)
			if err != nil {
				return 0, err
			}
			sum += v
		}
	}
	return sum, nil
}

// IfacePTBsIn6 counts the packet-too-big messages n received on one
// interface (IPv6 keeps ICMP counters per interface; IPv4 does not).
func (n *NS) IfacePTBsIn6(ifname string) (int64, error) {
	return n.snmp("/proc/thread-self/net/dev_snmp6/"+ifname, "", "Icmp6InPktTooBigs")
}
