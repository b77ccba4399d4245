//go:build linux

package safety_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestProxyARPPeersDoNotBlindTheLoopGuard: the router of node 1's segment
// answers ARP for a subnet that is not on it (proxy ARP), and two of node
// 1's peers are in that subnet, so they resolve to the router's MAC. With
// l2, node 1 must report them not_on_segment and keep the router's MAC out
// of its loop guard: a genuine PTB from the router is relayed (to node 2),
// not dropped as a peer's copy (from_peer), which is what happened when
// every peer MAC counted.
func TestProxyARPPeersDoNotBlindTheLoopGuard(t *testing.T) {
	s := testnet.NewSegment(t, "ppx", 2, 1)
	r, n1 := s.Routers[0], s.Nodes[0]
	// The far subnet: a veth pair inside the router (no dummy module needed).
	testnet.IP(t, "-n", r, "link", "add", "far0", "type", "veth", "peer", "name", "far1")
	testnet.IP(t, "-n", r, "addr", "add", "10.88.0.254/24", "dev", "far0")
	testnet.IP(t, "-n", r, "link", "set", "far0", "up")
	testnet.IP(t, "-n", r, "link", "set", "far1", "up")
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.eth0.proxy_arp=1", "net.ipv4.neigh.eth0.proxy_delay=0"} {
		if out, err := exec.Command("ip", "netns", "exec", r, "sysctl", "-qw", k).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s: %v %s", k, err, out)
		}
	}
	// Node 1 takes the far subnet for on-link, as with Calico's routes.
	testnet.IP(t, "-n", n1, "route", "add", "10.88.0.0/24", "dev", "eth0")

	// Node 2 named, so its two addresses are one peer (one frame).
	peers := []string{s.Nodes[1] + "=" + s.V4[1], s.Nodes[1] + "=" + s.V6[1], "10.88.0.5", "10.88.0.6"}
	node := testnet.StartDaemon(t, n1, pmtud, []string{"--iface", "eth0", "--transport", "l2",
		"--peers", strings.Join(peers, ","), "--nodename", n1, "--log-format", "text", "--log-level", "debug"}, nil)
	peer := testnet.StartDaemon(t, s.Nodes[1], pmtud, nodeArgs(s, 1, "--transport", "l2"), nil)
	peer.WaitReady(t, 10*time.Second)
	// Readiness with such peers is the daemon's call; wait for l2's verdict.
	answered := func(l, p string) bool {
		return logHas(l, "peer state changed", "peer="+p+" ", "state=not_on_segment") ||
			logHas(l, "peer state changed", "peer="+p+" ", "state=resolved")
	}
	testnet.WaitFor(t, "every peer answered for", 10*time.Second, func() bool {
		l := node.Log()
		return answered(l, "10.88.0.5") && answered(l, "10.88.0.6") && answered(l, s.Nodes[1])
	})
	// The view is rebuilt when l2 signals a state change; wait until its
	// peer MACs hold node 2's and nothing else (the router's would blind
	// the loop guard).
	testnet.WaitFor(t, "the view to settle", 3*time.Second, func() bool {
		body, _ := node.Ready()
		return strings.Contains(body, "1 of 3 peers resolved")
	})
	for _, p := range []string{"10.88.0.5", "10.88.0.6"} {
		if !logHas(node.Log(), "peer state changed", "peer="+p+" ", "state=not_on_segment") {
			t.Errorf("peer %s behind the proxy-ARP router not reported not_on_segment", p)
		}
	}

	fi := s.NewFrameInjector(t, 0, 0)
	r4, r6 := netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R6[0])
	before := node.Metrics(t)
	assertRelays(t, s, fi, node, []*testnet.Daemon{peer}, r4, r6, 46000)
	m := node.Metrics(t)
	if d := m[dropped("from_peer")] - before[dropped("from_peer")]; d != 0 {
		t.Errorf("%v genuine PTBs from the proxy-ARP router dropped as from_peer", d)
	}
	if d := m[`gopmtud_frames_sent_total{transport="l2"}`] - before[`gopmtud_frames_sent_total{transport="l2"}`]; d != 2 {
		t.Errorf("%v frames sent for 2 messages, want 2 (node 2 only, nothing to the router)", d)
	}
}
