//go:build linux

// Package relay_test runs real go-pmtud processes on a shared segment of
// network namespaces and injects real PTBs: each message must reach every
// peer's NFLOG over each transport, in both families, and the copies must
// not be relayed again.
package relay_test

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

var binary string

// TestMain builds the daemon once. Without root it fails when the root
// tests are required (CI, make test) and otherwise lets every test skip
// itself, with its reason, in testnet.NewSegment.
func TestMain(m *testing.M) {
	if code := testnet.MainCheck("test/relay"); code != 0 {
		os.Exit(code)
	}
	if testnet.NoRootReason() != "" {
		os.Exit(m.Run())
	}
	bin, cleanup, err := testnet.BuildDaemon()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

var vip4, vip6 = testnet.VIP4, testnet.VIP6

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, what, 3*time.Second, cond)
}

func TestEveryTransportReachesEveryPeerOnceAndCopiesAreNotRelayed(t *testing.T) {
	for _, tc := range []struct {
		transport  string
		copyReason string // why a peer drops the copy it receives
		frames     float64
	}{
		{"routed", "from_peer", 2},
		{"l2", "from_peer", 2},
		{"broadcast", "l2_broadcast", 1},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			s := testnet.NewSegment(t, "prl", 3, 1)
			ds := s.Start(t, binary, tc.transport)
			for _, fam := range []struct {
				name, router, vip, family string
				v6                        bool
			}{
				{"ipv4", "10.77.0.254", vip4, "ipv4", false},
				{"ipv6", "fd77::fe", vip6, "ipv6", true},
			} {
				pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(fam.router), VIP: netip.MustParseAddr(fam.vip),
					Client: netip.MustParseAddr(map[bool]string{false: "203.0.113.5", true: "2001:db8:2::5"}[fam.v6]),
					MTU:    1400, SrcPort: 80, DstPort: 40000})
				before := make([]map[string]float64, len(ds))
				for i, d := range ds {
					before[i] = d.Metrics(t)
				}
				s.Inject(t, 0, pkt, fam.v6)

				relayed := `gopmtud_messages_relayed_total{family="` + fam.family + `"}`
				dropped := `gopmtud_packets_dropped_total{reason="` + tc.copyReason + `"}`
				waitFor(t, fam.name+" copies at both peers", func() bool {
					return ds[1].Metrics(t)[dropped]-before[1][dropped] >= 1 && ds[2].Metrics(t)[dropped]-before[2][dropped] >= 1
				})
				// A positive signal instead of a sleep: every daemon has decided
				// all it received, and the peers decided about their copies
				// (dropped, counted below), so any echo would already be a
				// relay at a peer and a packet received back at node1.
				after := testnet.WaitSettled(t, 3*time.Second, ds...)
				delta := func(i int, k string) float64 { return after[i][k] - before[i][k] }
				if delta(0, relayed) != 1 {
					t.Errorf("%s: node1 relayed %v messages, want 1", fam.name, delta(0, relayed))
				}
				if got := delta(0, `gopmtud_frames_sent_total{transport="`+tc.transport+`"}`); got != tc.frames {
					t.Errorf("%s: node1 sent %v frames, want %v", fam.name, got, tc.frames)
				}
				if got := delta(0, "gopmtud_packets_received_total"); got != 1 {
					t.Errorf("%s: node1 received %v packets, want 1 (a copy came back)", fam.name, got)
				}
				for i := 1; i < 3; i++ {
					if got := delta(i, "gopmtud_packets_received_total"); got != 1 {
						t.Errorf("%s: node%d received %v packets, want exactly 1 copy", fam.name, i+1, got)
					}
					if got := delta(i, relayed); got != 0 {
						t.Errorf("%s: node%d relayed a relayed copy (%v)", fam.name, i+1, got)
					}
					if got := delta(i, dropped); got != 1 {
						t.Errorf("%s: node%d dropped{%s} = %v, want 1", fam.name, i+1, tc.copyReason, got)
					}
				}
			}
		})
	}
}

func TestFirewallTableAppearsAndDisappearsWithTheDaemon(t *testing.T) {
	s := testnet.NewSegment(t, "prl", 2, 1)
	ns := s.Nodes[0]
	d := testnet.StartDaemon(t, ns, binary, []string{"--iface", "eth0", "--peers", s.V4[1], "--log-format", "text"}, nil)
	d.WaitReady(t, 10*time.Second)
	if m := d.Metrics(t); m["gopmtud_firewall_rule_up"] != 1 {
		t.Fatalf("firewall_rule_up = %v", m["gopmtud_firewall_rule_up"])
	}
	if !testnet.TablePresent(t, ns) {
		t.Fatal("table inet go-pmtud missing while the daemon runs")
	}
	start := time.Now()
	d.Cmd.Process.Signal(syscall.SIGTERM)
	code, exited := d.Wait(2 * time.Second)
	if !exited {
		t.Fatal("no exit within 2 s of SIGTERM")
	}
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, d.Log())
	}
	t.Logf("exit 0 %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if testnet.TablePresent(t, ns) {
		t.Fatal("table inet go-pmtud left behind after SIGTERM")
	}
}
