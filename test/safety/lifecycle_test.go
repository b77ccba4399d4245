//go:build linux

package safety_test

import (
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// pair is a router, a node under test and one peer, both running go-pmtud.
type pair struct {
	s          *testnet.Segment
	node, peer *testnet.Daemon
	fi         *testnet.FrameInjector
}

func nodeArgs(s *testnet.Segment, i int, extra ...string) []string {
	return append([]string{"--iface", "eth0", "--peers", s.PeersOf(i), "--nodename", s.Nodes[i],
		"--log-format", "text", "--log-level", "debug"}, extra...)
}

func newPair(t *testing.T, prefix string, extra ...string) *pair {
	t.Helper()
	p := &pair{s: testnet.NewSegment(t, prefix, 2, 1)}
	p.node = testnet.StartDaemon(t, p.s.Nodes[0], pmtud, nodeArgs(p.s, 0, extra...), nil)
	p.peer = testnet.StartDaemon(t, p.s.Nodes[1], pmtud, nodeArgs(p.s, 1), nil)
	p.node.WaitReady(t, 10*time.Second)
	p.peer.WaitReady(t, 10*time.Second)
	p.fi = p.s.NewFrameInjector(t, 0, 0)
	return p
}

// relays checks that node relays a fresh good message in each family to the peer.
func (p *pair) relays(t *testing.T, node *testnet.Daemon, dport uint16) {
	t.Helper()
	assertRelays(t, p.s, p.fi, node, []*testnet.Daemon{p.peer},
		netip.MustParseAddr(p.s.R4[0]), netip.MustParseAddr(p.s.R6[0]), dport)
}

func sigterm(t *testing.T, d *testnet.Daemon) time.Duration {
	t.Helper()
	start := time.Now()
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, exited := d.Wait(2 * time.Second)
	took := time.Since(start)
	if !exited {
		t.Fatalf("no exit within 2 s of SIGTERM\n%s", d.Log())
	}
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, d.Log())
	}
	return took
}

func TestSIGTERMRemovesTableAndExitsZero(t *testing.T) {
	p := newPair(t, "pst")
	p.relays(t, p.node, 41000)
	if tb := testnet.ListTable(t, p.s.Nodes[0]); tb == nil || tb.Rules != 2 {
		t.Fatalf("table while running: %+v, want 1 chain with 2 rules", tb)
	}
	took := sigterm(t, p.node)
	if testnet.TablePresent(t, p.s.Nodes[0]) {
		t.Fatal("table inet go-pmtud left behind after SIGTERM")
	}
	if !strings.Contains(p.node.Log(), "firewall table removed") {
		t.Errorf("no log line about removing the table:\n%s", p.node.Log())
	}
	t.Logf("exit 0 in %v after SIGTERM, table removed", took.Round(time.Millisecond))
}

func TestSIGKILLThenRestartReplacesStaleTable(t *testing.T) {
	p := newPair(t, "psk")
	ns := p.s.Nodes[0]
	if err := p.node.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, exited := p.node.Wait(2 * time.Second); !exited {
		t.Fatal("SIGKILL did not end the process")
	}
	stale := testnet.ListTable(t, ns)
	if stale == nil {
		t.Fatal("expected the killed daemon's table to be left behind (nothing can remove it)")
	}
	// Mark the stale table: a replaced table cannot carry the mark, a
	// reused one (flushed, rules re-added) would, with the same chain and
	// rule counts.
	testnet.MarkTable(t, ns)
	if marked := testnet.ListTable(t, ns); marked == nil || !slices.Contains(marked.Names, testnet.MarkerChain) {
		t.Fatalf("marking the stale table failed: %+v", marked)
	}
	// The restart must take the NFLOG group, the instance lock and the
	// table over from the dead process.
	again := testnet.StartDaemon(t, ns, pmtud, nodeArgs(p.s, 0), nil)
	again.WaitReady(t, 10*time.Second)
	tb := testnet.ListTable(t, ns)
	if tb != nil && slices.Contains(tb.Names, testnet.MarkerChain) {
		t.Fatalf("after restart the stale table's marker chain is still there (%v): the table was reused, not replaced", tb.Names)
	}
	if tb == nil || tb.Chains != 1 || tb.Rules != 2 {
		t.Fatalf("after restart: %+v, want exactly 1 chain with 2 rules (stale %+v)", tb, stale)
	}
	p.relays(t, again, 41001)
	sigterm(t, again)
	if testnet.TablePresent(t, ns) {
		t.Fatal("table left behind after the restarted daemon's SIGTERM")
	}
}

func TestSecondInstanceRefuses(t *testing.T) {
	p := newPair(t, "psi")
	ns := p.s.Nodes[0]
	// Another group and other ports: only the instance lock can stop it.
	second := testnet.StartDaemon(t, ns, pmtud, nodeArgs(p.s, 0, "--nflog-group", "34",
		"--metrics-port", "31040", "--health-port", "31041"), nil)
	code, exited := second.Wait(5 * time.Second)
	if !exited {
		t.Fatalf("second instance still running after 5 s:\n%s", second.Log())
	}
	if code == 0 {
		t.Errorf("second instance exited 0, want non-zero")
	}
	if !strings.Contains(second.Log(), "another go-pmtud is already running in this network namespace") {
		t.Errorf("second instance's message does not say why:\n%s", second.Log())
	}
	t.Logf("second instance: exit %d: %s", code, lastLine(second.Log()))
	// The first is untouched: its table, its readiness, its relays.
	if tb := testnet.ListTable(t, ns); tb == nil || tb.Rules != 2 {
		t.Fatalf("first instance's table after the second's attempt: %+v", tb)
	}
	if body, ok := p.node.Ready(); !ok {
		t.Fatalf("first instance not ready: %s", body)
	}
	p.relays(t, p.node, 41002)
}

func TestNFLOGGroupTaken(t *testing.T) {
	s := testnet.NewSegment(t, "psg", 2, 1)
	ns := s.Nodes[0]
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Somebody else (an ulogd, say) holds group 33 in the node's namespace.
	other, err := capture.Open(capture.Config{Group: 33, NetNS: int(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	d := testnet.StartDaemon(t, ns, pmtud, nodeArgs(s, 0), nil)
	code, exited := d.Wait(5 * time.Second)
	if !exited {
		t.Fatalf("go-pmtud still running after 5 s with its group taken:\n%s", d.Log())
	}
	if code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if !strings.Contains(d.Log(), "nflog group 33 is already in use") {
		t.Errorf("the error does not say the group is in use:\n%s", d.Log())
	}
	if testnet.TablePresent(t, ns) {
		t.Error("a table was left behind by a daemon that could not capture")
	}
	t.Logf("exit %d: %s", code, lastLine(d.Log()))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
