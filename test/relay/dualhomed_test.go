//go:build linux

package relay_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestSecondUplinkIsCaptured: node 1 is dual-homed: eth0 on the shared
// segment (router r1, the peers) and eth1 to a second router r2, with a
// multipath default route over both, as a node attached to two top-of-rack
// switches. Started without --iface, go-pmtud captures on both uplinks: a
// PTB that r2 delivers on eth1 reaches the peers, and their copies are not
// relayed back.
func TestSecondUplinkIsCaptured(t *testing.T) {
	s := testnet.NewSegment(t, "pdh", 3, 1)
	node, r2 := s.Nodes[0], s.Prefix+"-r2"
	testnet.IP(t, "netns", "add", r2)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", r2).Run() })
	testnet.IP(t, "-n", r2, "link", "set", "lo", "up")
	testnet.IP(t, "-n", node, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", r2)
	for _, c := range [][]string{
		{"-n", node, "link", "set", "eth1", "up"},
		{"-n", r2, "link", "set", "eth0", "up"},
		{"-n", node, "addr", "add", "10.78.0.1/24", "dev", "eth1"},
		{"-n", node, "addr", "add", "fd78::1/64", "dev", "eth1", "nodad"},
		{"-n", r2, "addr", "add", "10.78.0.254/24", "dev", "eth0"},
		{"-n", r2, "addr", "add", "fd78::fe/64", "dev", "eth0", "nodad"},
		{"-n", r2, "route", "add", vip4 + "/32", "via", "10.78.0.1"},
		{"-n", r2, "-6", "route", "add", vip6 + "/128", "via", "fd78::1"},
		{"-n", node, "route", "replace", "default", "nexthop", "via", s.R4[0], "dev", "eth0", "nexthop", "via", "10.78.0.254", "dev", "eth1"},
		{"-n", node, "-6", "route", "replace", "default", "nexthop", "via", s.R6[0], "dev", "eth0", "nexthop", "via", "fd78::fe", "dev", "eth1"},
	} {
		testnet.IP(t, c...)
	}
	var ds []*testnet.Daemon
	for i, ns := range s.Nodes {
		args := []string{"--transport", "l2", "--peers", s.PeersOf(i), "--nodename", ns, "--log-format", "text", "--kubernetes", "false"}
		if i > 0 {
			args = append(args, "--iface", "eth0")
		}
		ds = append(ds, testnet.StartDaemon(t, ns, binary, args, nil))
	}
	for _, d := range ds {
		d.WaitReady(t, 15*time.Second)
	}
	if body, _ := ds[0].Ready(); !strings.Contains(body, "capturing on eth0,eth1") {
		t.Fatalf("node 1 does not capture on both uplinks:\n%s", body)
	}
	for _, fam := range []struct {
		router, vip, client string
		v6                  bool
	}{{"10.78.0.254", vip4, "203.0.113.78", false}, {"fd78::fe", vip6, "2001:db8:2::78", true}} {
		pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(fam.router), VIP: netip.MustParseAddr(fam.vip),
			Client: netip.MustParseAddr(fam.client), MTU: 1400, SrcPort: 80, DstPort: 40078})
		before := []map[string]float64{ds[0].Metrics(t), ds[1].Metrics(t), ds[2].Metrics(t)}
		testnet.InjectFrom(t, r2, pkt, fam.v6)
		const copies = `gopmtud_packets_dropped_total{reason="from_peer"}`
		waitFor(t, "the copy of a PTB that arrived on eth1 at both peers", func() bool {
			return ds[1].Metrics(t)[copies] == before[1][copies]+1 && ds[2].Metrics(t)[copies] == before[2][copies]+1
		})
		if got := ds[0].Metrics(t)["gopmtud_packets_received_total"] - before[0]["gopmtud_packets_received_total"]; got != 1 {
			t.Errorf("node 1 captured %v packets, want 1 (a copy came back?)", got)
		}
	}
}
