//go:build linux

package relay_test

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

const (
	injected = `gopmtud_tunnel_received_total{result="injected"}`
	notPeer  = `gopmtud_tunnel_received_total{result="not_peer"}`
	received = "gopmtud_packets_received_total"
	fromPeer = `gopmtud_packets_dropped_total{reason="from_peer"}`
	frames   = `gopmtud_frames_sent_total{transport="tunnel"}`
)

var families = []struct {
	name, router, client, relayed string
	v6                            bool
}{
	{"ipv4", "10.77.0.254", "203.0.113.5", `gopmtud_messages_relayed_total{family="ipv4"}`, false},
	{"ipv6", "fd77::fe", "2001:db8:2::5", `gopmtud_messages_relayed_total{family="ipv6"}`, true},
}

func vipOf(v6 bool) string {
	if v6 {
		return vip6
	}
	return vip4
}

// TestTunnelEachPeerInjectsOnceAndCopiesAreNotRelayed: three daemons with
// --transport tunnel. A PTB arriving at node1 is relayed once, as one
// datagram to each peer; each peer injects it exactly once into its TUN
// device. With go-pmtud's own rule (uplink only) the injected copy is never
// captured; behind an operator's rule that logs PTBs on every interface it
// is captured on the TUN device and dropped as from_peer, never relayed.
func TestTunnelEachPeerInjectsOnceAndCopiesAreNotRelayed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    []string
		naive    bool
		captured float64 // packets each peer's NFLOG sees per message
	}{
		{"own rule", nil, false, 0},
		{"operator rule on every interface", []string{"--firewall", "none"}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testnet.NewSegment(t, "ptn", 3, 1)
			if tc.naive {
				for _, ns := range s.Nodes {
					installEveryInterfaceRule(t, ns, 33)
				}
			}
			ds, _ := startTunnel(t, s, []string{keyA}, tc.extra...)
			for _, ns := range s.Nodes {
				// Only the RFC 7600 dummy address, scope host, no IPv6 address.
				out, err := exec.Command("ip", "-n", ns, "-o", "addr", "show", "dev", "pmtud0").CombinedOutput()
				if err != nil || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "inet 192.0.0.8/32 scope host noprefixroute pmtud0") {
					t.Errorf("%s: pmtud0 should exist with only 192.0.0.8/32 scope host: %v %s", ns, err, out)
				}
			}
			for port, fam := range families {
				pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(fam.router), VIP: netip.MustParseAddr(vipOf(fam.v6)),
					Client: netip.MustParseAddr(fam.client), MTU: 1400, SrcPort: 80, DstPort: uint16(40000 + port)})
				before := make([]map[string]float64, len(ds))
				for i, d := range ds {
					before[i] = d.Metrics(t)
				}
				s.Inject(t, 0, pkt, fam.v6)
				waitFor(t, fam.name+" injected at both peers", func() bool {
					return ds[1].Metrics(t)[injected]-before[1][injected] >= 1 && ds[2].Metrics(t)[injected]-before[2][injected] >= 1
				})
				time.Sleep(300 * time.Millisecond) // room for any echo or storm to show
				after := make([]map[string]float64, len(ds))
				for i, d := range ds {
					after[i] = d.Metrics(t)
				}
				delta := func(i int, k string) float64 { return after[i][k] - before[i][k] }
				if delta(0, fam.relayed) != 1 || delta(0, frames) != 2 || delta(0, received) != 1 {
					t.Errorf("%s: node1 relayed %v, sent %v datagrams, received %v packets; want 1, 2, 1",
						fam.name, delta(0, fam.relayed), delta(0, frames), delta(0, received))
				}
				if got := delta(0, injected); got != 0 {
					t.Errorf("%s: node1 injected %v copies: one came back", fam.name, got)
				}
				for i := 1; i < 3; i++ {
					if got := delta(i, injected); got != 1 {
						t.Errorf("%s: node%d injected %v copies, want exactly 1", fam.name, i+1, got)
					}
					if got := delta(i, received); got != tc.captured {
						t.Errorf("%s: node%d captured %v packets, want %v", fam.name, i+1, got, tc.captured)
					}
					if got := delta(i, fromPeer); got != tc.captured {
						t.Errorf("%s: node%d dropped{from_peer} = %v, want %v", fam.name, i+1, got, tc.captured)
					}
					if got := delta(i, fam.relayed) + delta(i, frames); got != 0 {
						t.Errorf("%s: node%d relayed a relayed copy (%v)", fam.name, i+1, got)
					}
				}
			}
		})
	}
}

// TestTunnelRefusesNonPeers: a well-formed, validly signed tunnel datagram
// from an address that is not a peer (the router) is counted as not_peer
// and not injected. Without go-pmtud's table (--firewall none), so that
// the receiver's own check is what is tested (the kernel filter drops it
// earlier otherwise: TestTunnelHostileDatagrams).
func TestTunnelRefusesNonPeers(t *testing.T) {
	s := testnet.NewSegment(t, "ptn", 2, 1)
	ds, _ := startTunnel(t, s, []string{keyA}, "--firewall", "none")
	for i, fam := range families {
		pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(fam.router), VIP: netip.MustParseAddr(vipOf(fam.v6)),
			Client: netip.MustParseAddr(fam.client), MTU: 1400, SrcPort: 80, DstPort: uint16(41000 + i)})
		d := sealed(t, keyA, pkt, time.Now(), 1, uint64(i+1))
		node := s.V4[0]
		if fam.v6 {
			node = s.V6[0]
		}
		before := ds[0].Metrics(t)
		err := netnsutil.DoNamed(s.Routers[0], func() error {
			c, err := net.Dial("udp", net.JoinHostPort(node, strconv.Itoa(transport.DefaultTunnelPort)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(d)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, fam.name+" not_peer counted", func() bool { return ds[0].Metrics(t)[notPeer]-before[notPeer] == 1 })
		after := ds[0].Metrics(t)
		if after[injected] != before[injected] {
			t.Errorf("%s: a non-peer's datagram was injected", fam.name)
		}
	}
}

// TestTunnelDeviceGoesWithTheDaemon: pmtud0 disappears when go-pmtud exits,
// on SIGTERM and on SIGKILL alike (the kernel removes a non-persistent TUN
// device with its last file descriptor).
func TestTunnelDeviceGoesWithTheDaemon(t *testing.T) {
	s := testnet.NewSegment(t, "ptn", 2, 1)
	ds, _ := startTunnel(t, s, []string{keyA})
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		ns := s.Nodes[i]
		if err := exec.Command("ip", "-n", ns, "link", "show", "pmtud0").Run(); err != nil {
			t.Fatalf("%s: no pmtud0 while go-pmtud runs", ns)
		}
		ds[i].Cmd.Process.Signal(sig)
		if _, exited := ds[i].Wait(5 * time.Second); !exited && sig == syscall.SIGTERM {
			t.Fatalf("%s: no exit after %v", ns, sig)
		}
		waitFor(t, "pmtud0 gone after "+sig.String(), func() bool {
			return exec.Command("ip", "-n", ns, "link", "show", "pmtud0").Run() != nil
		})
	}
}

// installEveryInterfaceRule is an operator's rule that logs every
// frag-needed and packet-too-big, on every interface, to NFLOG group:
//
//	nft add table inet optest
//	nft add chain inet optest pre '{ type filter hook prerouting priority raw; }'
//	nft add rule inet optest pre icmp type destination-unreachable icmp code frag-needed log group 33 queue-threshold 1
//	nft add rule inet optest pre icmpv6 type packet-too-big log group 33 queue-threshold 1
func installEveryInterfaceRule(t *testing.T, ns string, group uint16) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "optest"})
	ch := c.AddChain(&nftables.Chain{Name: "pre", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	for _, x := range []struct {
		nfproto, l4 byte
		typeCode    []byte
	}{
		{unix.NFPROTO_IPV4, unix.IPPROTO_ICMP, []byte{3, 4}},
		{unix.NFPROTO_IPV6, unix.IPPROTO_ICMPV6, []byte{2, 0}},
	} {
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{x.nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{x.l4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: x.typeCode},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD, Group: group, QThreshold: 1},
		}})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("%s: operator rule: %v", ns, err)
	}
}

// TestTunnelUnderReadOnlyProcSys: container runtimes mount /proc/sys
// read-only in unprivileged containers. go-pmtud runs on node2 in a mount
// namespace where it is (the wrapper refuses to start it if a write to
// /proc/sys succeeds), with the node's default.rp_filter=2 (a systemd
// distribution's default, which pmtud0 inherits) and all.rp_filter=2
// (Ubuntu's): it still sets pmtud0's rp_filter to 0, its addrgenmode to
// none and its dummy IPv4 address, through rtnetlink, logs no rp_filter
// error, and injects the copy node1 relays.
func TestTunnelUnderReadOnlyProcSys(t *testing.T) {
	for _, tool := range []string{"unshare", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	s := testnet.NewSegment(t, "ptn", 2, 1)
	if out, err := exec.Command("ip", "netns", "exec", s.Nodes[1], "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=2", "net.ipv4.conf.all.rp_filter=2").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, keys, keyA)
	args := []string{"--iface", "eth0", "--transport", "tunnel", "--log-format", "text", "--kubernetes", "false", "--tunnel-key-file", keys}
	d0 := testnet.StartDaemon(t, s.Nodes[0], binary, append(args, "--peers", s.PeersOf(0)), nil)
	script := `mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && ` +
		`! (echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter) 2>/dev/null && exec "$0" "$@"`
	wrapped := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, binary}, append(args, "--peers", s.PeersOf(1))...)
	d1 := testnet.StartDaemon(t, s.Nodes[1], "unshare", wrapped, nil)
	d0.WaitReady(t, 10*time.Second)
	d1.WaitReady(t, 10*time.Second)

	out, err := exec.Command("ip", "-n", s.Nodes[1], "-d", "link", "show", "pmtud0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "addrgenmode none") {
		t.Errorf("pmtud0: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "netns", "exec", s.Nodes[1], "sysctl", "-n", "net.ipv4.conf.pmtud0.rp_filter").CombinedOutput(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("pmtud0 rp_filter = %s, want 0", out)
	}
	for _, want := range []string{"sysctl=net.ipv4.conf.pmtud0.rp_filter from=2 to=0 changed=true", "sysctl=net.ipv6.conf.pmtud0.addr_gen_mode from=0 to=1 changed=true",
		"device=pmtud0 address=192.0.0.8/32 scope=host"} {
		if !strings.Contains(d1.Log(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(d1.Log(), "level=ERROR") {
		t.Errorf("all.rp_filter=2 logged as a problem:\n%s", d1.Log())
	}
	pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(vip4),
		Client: netip.MustParseAddr("203.0.113.9"), MTU: 1400, SrcPort: 80, DstPort: 42000})
	before := d1.Metrics(t)[injected]
	s.Inject(t, 0, pkt, false)
	waitFor(t, "node2 injects the copy", func() bool { return d1.Metrics(t)[injected] == before+1 })
}
