//go:build linux

package safety_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestLeastPrivilegeTunnelAndBroadcast runs go-pmtud with the tunnel and
// the broadcast transports holding CAP_NET_ADMIN and CAP_NET_RAW only.
//
// As UID 0, not nobody: the tunnel opens /dev/net/tun, which is mode 0600
// root here (as on most distributions; a container runtime creates it the
// same way), and no capability opens a file its mode refuses to the UID
// without CAP_DAC_OVERRIDE. setpriv(1) shrinks the capability bounding set
// before exec, so UID 0 gains nothing else at exec: CapEff, CapPrm and
// CapBnd are exactly 0x3000. The key file is 0600 and the process's own.
//
// Each must start, install its table, relay (node -> peer) and, for the
// tunnel, receive and inject (peer -> node), then on SIGTERM remove its
// table and, for the tunnel, its TUN device.
func TestLeastPrivilegeTunnelAndBroadcast(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to shrink the bounding set")
	}
	for _, transport := range []string{"tunnel", "broadcast"} {
		t.Run(transport, func(t *testing.T) {
			s := testnet.NewSegment(t, "plt", 2, 1)
			extra := []string{"--transport", transport}
			if transport == "tunnel" {
				keys := filepath.Join(t.TempDir(), "keys")
				if err := os.WriteFile(keys, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				extra = append(extra, "--tunnel-key-file", keys)
			}
			wrapped := append([]string{"--bounding-set=-all,+net_admin,+net_raw", "--inh-caps=-all", "--", pmtud}, nodeArgs(s, 0, extra...)...)
			node := testnet.StartDaemon(t, s.Nodes[0], setpriv, wrapped, nil)
			peer := testnet.StartDaemon(t, s.Nodes[1], pmtud, nodeArgs(s, 1, extra...), nil)
			node.WaitReady(t, 10*time.Second)
			peer.WaitReady(t, 10*time.Second)

			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", node.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			const want = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW // 0x3000
			for _, f := range []string{"CapEff", "CapPrm", "CapBnd"} {
				if v := statusField(string(status), f); v != fmt.Sprintf("%016x", want) {
					t.Errorf("%s = %s, want %016x", f, v, want)
				}
			}
			if tb := testnet.ListTable(t, s.Nodes[0]); tb == nil {
				t.Fatal("no table")
			}
			r4, r6 := netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R6[0])
			// node -> peer: the node relays; the peer gets both copies.
			evidence := `gopmtud_packets_received_total`
			if transport == "tunnel" {
				evidence = `gopmtud_tunnel_received_total{result="injected"}`
			}
			relayAndSee(t, s.NewFrameInjector(t, 0, 0), node, peer, r4, r6, evidence, 47000)
			if transport == "tunnel" {
				// peer -> node: the node's receiver injects with reduced capabilities.
				relayAndSee(t, s.NewFrameInjector(t, 0, 1), peer, node, r4, r6, evidence, 47100)
			}
			sigterm(t, node)
			if testnet.TablePresent(t, s.Nodes[0]) {
				t.Error("table left behind")
			}
			if transport == "tunnel" {
				if err := exec.Command("ip", "-n", s.Nodes[0], "link", "show", "pmtud0").Run(); err == nil {
					t.Error("pmtud0 left behind")
				}
			}
			if strings.Contains(node.Log(), "level=ERROR") {
				t.Errorf("errors logged with reduced capabilities:\n%s", node.Log())
			}
		})
	}
}

// relayAndSee sends a good PTB of each family to from's uplink and waits
// until from relayed both and to shows two more of evidence.
func relayAndSee(t *testing.T, fi *testnet.FrameInjector, from, to *testnet.Daemon, r4, r6 netip.Addr, evidence string, dport uint16) {
	t.Helper()
	before, tb := from.Metrics(t), to.Metrics(t)
	if err := fi.Send(good4(r4, 1400, dport)); err != nil {
		t.Fatal(err)
	}
	if err := fi.Send(good6(r6, 1400, dport)); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, from.NS+" relaying one message per family", 3*time.Second, func() bool {
		m := from.Metrics(t)
		return m[relayed4]-before[relayed4] == 1 && m[relayed6]-before[relayed6] == 1
	})
	testnet.WaitFor(t, to.NS+" seeing both copies", 3*time.Second, func() bool {
		return to.Metrics(t)[evidence]-tb[evidence] == 2
	})
}
