//go:build linux

package relay_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// v4Peers is --peers as most operators write it: the other nodes' IPv4
// addresses only, although every node is dual-stack.
func v4Peers(s *testnet.Segment, self int) string {
	var ps []string
	for j := range s.Nodes {
		if j != self {
			ps = append(ps, s.V4[j])
		}
	}
	return strings.Join(ps, ",")
}

func startWithPeers(t *testing.T, s *testnet.Segment, transport string, peers func(int) string, extra ...string) []*testnet.Daemon {
	t.Helper()
	if transport == "tunnel" {
		f := filepath.Join(t.TempDir(), "tunnel.keys")
		writeKeys(t, f, keyA)
		extra = append(extra, "--tunnel-key-file", f)
	}
	var ds []*testnet.Daemon
	for i, ns := range s.Nodes {
		args := append([]string{"--iface", "eth0", "--transport", transport, "--peers", peers(i),
			"--nodename", ns, "--log-format", "text", "--kubernetes", "false"}, extra...)
		ds = append(ds, testnet.StartDaemon(t, ns, binary, args, nil))
	}
	for _, d := range ds {
		d.WaitReady(t, 15*time.Second)
	}
	return ds
}

func ptb6() []byte {
	return ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("fd77::fe"), VIP: netip.MustParseAddr(vip6),
		Client: netip.MustParseAddr("2001:db8:2::9"), MTU: 1400, SrcPort: 80, DstPort: 40009})
}

// TestIPv4PeersStillGetIPv6Messages: with --peers listing only IPv4
// addresses, an ICMPv6 packet-too-big reaches every peer node over every
// transport that can carry it: l2 and broadcast by MAC, tunnel inside IPv4
// UDP. One frame per node.
func TestIPv4PeersStillGetIPv6Messages(t *testing.T) {
	for _, tc := range []struct {
		transport, arrived string // the metric that rises at a peer when the copy arrives
		frames             float64
	}{
		{"l2", "gopmtud_packets_received_total", 2},
		{"broadcast", "gopmtud_packets_received_total", 1},
		{"tunnel", injected, 2},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			s := testnet.NewSegment(t, "pfm", 3, 1)
			ds := startWithPeers(t, s, tc.transport, func(i int) string { return v4Peers(s, i) })
			before := []map[string]float64{ds[0].Metrics(t), ds[1].Metrics(t), ds[2].Metrics(t)}
			s.Inject(t, 0, ptb6(), true)
			waitFor(t, "the IPv6 copy at both IPv4-listed peers", func() bool {
				return ds[1].Metrics(t)[tc.arrived] == before[1][tc.arrived]+1 && ds[2].Metrics(t)[tc.arrived] == before[2][tc.arrived]+1
			})
			m := ds[0].Metrics(t)
			if got := m[`gopmtud_messages_relayed_total{family="ipv6"}`] - before[0][`gopmtud_messages_relayed_total{family="ipv6"}`]; got != 1 {
				t.Errorf("node1 relayed %v IPv6 messages, want 1", got)
			}
			sent := `gopmtud_frames_sent_total{transport="` + tc.transport + `"}`
			if got := m[sent] - before[0][sent]; got != tc.frames {
				t.Errorf("node1 sent %v frames, want %v (one per node)", got, tc.frames)
			}
		})
	}
}

// TestRoutedSaysWhichFamilyItCannotCarry: routed re-addresses the message,
// so an IPv6 PTB cannot go to a peer known only by IPv4: a drop reason, a
// readiness detail line and a log line, never silence.
func TestRoutedSaysWhichFamilyItCannotCarry(t *testing.T) {
	s := testnet.NewSegment(t, "pfr", 2, 1)
	ds := startWithPeers(t, s, "routed", func(i int) string { return v4Peers(s, i) })
	body, _ := ds[0].Ready()
	if !strings.Contains(body, "1 of 1 peers have no IPv6 address") {
		t.Errorf("readiness does not name the gap:\n%s", body)
	}
	if !strings.Contains(ds[0].Log(), "some peers cannot get every family") {
		t.Errorf("no log line about the gap:\n%s", ds[0].Log())
	}
	const reason = `gopmtud_packets_dropped_total{reason="no_peers_of_family"}`
	before := ds[0].Metrics(t)[reason]
	s.Inject(t, 0, ptb6(), true)
	waitFor(t, "the IPv6 message dropped as no_peers_of_family", func() bool { return ds[0].Metrics(t)[reason] == before+1 })
}

// TestDeadAndFarPeersKeepReadiness: with l2, a peer nobody answers for (a
// powered-off node still registered) and a peer in another subnet are
// detail lines and a gauge by state; readiness stays green and relays to
// the live peer go on.
func TestDeadAndFarPeersKeepReadiness(t *testing.T) {
	s := testnet.NewSegment(t, "pdp", 2, 1)
	const dead, far = "10.77.0.99", "10.99.0.5"
	peers := func(i int) string { return s.Nodes[1-i] + "=" + s.V4[1-i] + ",dead=" + dead + ",far=" + far }
	start := time.Now()
	ds := startWithPeers(t, s, "l2", peers)
	t.Logf("ready after %v with a dead and a far peer", time.Since(start).Round(time.Millisecond))
	body, ok := ds[0].Ready()
	if !ok {
		t.Fatalf("not ready:\n%s", body)
	}
	for _, want := range []string{"3 peers: 1 of 3 peers resolved", "dead ", "far not_on_link"} {
		if !strings.Contains(body, want) {
			t.Errorf("readiness lacks %q:\n%s", want, body)
		}
	}
	m := ds[0].Metrics(t)
	state := func(s string) float64 { return m[`gopmtud_peer_states{state="`+s+`"}`] }
	if state("resolved") != 1 || state("not_on_link") != 1 || state("unresolved")+state("failed") != 1 {
		t.Errorf("peer_states: resolved %v, not_on_link %v, unresolved %v, failed %v; want 1, 1 and 1 dead",
			state("resolved"), state("not_on_link"), state("unresolved"), state("failed"))
	}
	before := ds[1].Metrics(t)["gopmtud_packets_received_total"]
	s.Inject(t, 0, ptb6(), true)
	waitFor(t, "the copy at the live peer", func() bool { return ds[1].Metrics(t)["gopmtud_packets_received_total"] == before+1 })
}
