//go:build linux

package safety_test

import (
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// markedNeighbours lists the addresses of the neighbour entries on ns's
// eth0 that carry go-pmtud's protocol mark (transport.NeighProtocol), sorted.
func markedNeighbours(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "neigh", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh show: %v: %s", err, out)
	}
	var marked []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "proto"); i > 0 && i+1 < len(f) && f[i+1] == "213" {
			marked = append(marked, f[0])
		}
	}
	slices.Sort(marked)
	return marked
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestNeighbourEntriesSurviveNoRestart: the managed neighbour entries l2
// creates are marked, so entries a SIGKILLed (or OOM-killed) daemon left
// behind are found at the next start: those of addresses that are no longer
// peers are removed, those of current peers are kept and owned again, and
// SIGTERM then removes every marked entry.
func TestNeighbourEntriesSurviveNoRestart(t *testing.T) {
	s := testnet.NewSegment(t, "pnk", 4, 1)
	ns := s.Nodes[0]
	args := func(peers ...string) []string {
		return []string{"--iface", "eth0", "--transport", "l2", "--peers", strings.Join(peers, ","),
			"--nodename", ns, "--log-format", "text", "--log-level", "debug"}
	}
	first := sorted(s.V4[1], s.V6[1], s.V4[2], s.V6[2])
	d := testnet.StartDaemon(t, ns, pmtud, args(first...), nil)
	d.WaitReady(t, 10*time.Second)
	testnet.WaitFor(t, "marked entries for the first peers", 3*time.Second, func() bool {
		return slices.Equal(markedNeighbours(t, ns), first)
	})

	// SIGKILL: nothing cleans up, the entries stay (and the kernel keeps
	// probing them).
	if err := d.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, exited := d.Wait(2 * time.Second); !exited {
		t.Fatal("still running 2 s after SIGKILL")
	}
	if m := markedNeighbours(t, ns); !slices.Equal(m, first) {
		t.Fatalf("after SIGKILL: marked entries %q, want %q left behind", m, first)
	}

	// Restart with node 1 gone and node 3 new.
	second := sorted(s.V4[2], s.V6[2], s.V4[3], s.V6[3])
	d2 := testnet.StartDaemon(t, ns, pmtud, args(second...), nil)
	d2.WaitReady(t, 10*time.Second)
	testnet.WaitFor(t, "only the new peers' entries marked", 3*time.Second, func() bool {
		return slices.Equal(markedNeighbours(t, ns), second)
	})
	for _, a := range []string{s.V4[1], s.V6[1]} {
		if !logHas(d2.Log(), "left by an earlier run (not a peer any more)", "addr="+a+" ") {
			t.Errorf("no log line about removing %s:\n%s", a, d2.Log())
		}
	}

	// SIGTERM: every marked entry goes, adopted ones included.
	sigterm(t, d2)
	if m := markedNeighbours(t, ns); len(m) != 0 {
		t.Errorf("after SIGTERM: marked entries %q remain", m)
	}
}

// logHas reports whether one line of log contains every part.
func logHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
