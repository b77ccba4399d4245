//go:build linux

package safety_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

func sendErrors(peer string) string { return `gopmtud_send_errors_total{peer="` + peer + `"}` }

// TestPeerDownOrUnreachable: a peer that is gone or unreachable costs its
// own copies and nothing else. Node 1 relays to B and C (routed transport).
//   - C down (its link cut, its daemon dead): the kernel accepts the copies
//     and ARP fails later, so no send error can be seen; B gets every copy.
//   - C unreachable (its route withdrawn, as a routed fabric does when a
//     node leaves): every send to C fails at once and is counted under C;
//     B still gets every copy, and readiness stays green.
//   - C back: it receives again.
func TestPeerDownOrUnreachable(t *testing.T) {
	s := testnet.NewSegment(t, "psp", 3, 1)
	ds := s.Start(t, pmtud, "routed")
	node, b, c := ds[0], ds[1], ds[2]
	fi := s.NewFrameInjector(t, 0, 0)
	r4, r6 := netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R6[0])
	const n = 3 // relays per family and phase
	dport := uint16(42000)

	// burst relays n messages per family and returns the node's and B's
	// counter deltas.
	burst := func(phase string) (nd, bd map[string]float64) {
		t.Helper()
		n0, b0 := node.Metrics(t), b.Metrics(t)
		for range n {
			dport++
			if err := fi.Send(good4(r4, 1400, dport)); err != nil {
				t.Fatal(err)
			}
			if err := fi.Send(good6(r6, 1400, dport)); err != nil {
				t.Fatal(err)
			}
		}
		testnet.WaitFor(t, phase+": all relayed", 3*time.Second, func() bool {
			m := node.Metrics(t)
			return m[relayed4]-n0[relayed4] == n && m[relayed6]-n0[relayed6] == n
		})
		testnet.WaitFor(t, phase+": B got every copy", 3*time.Second, func() bool {
			return b.Metrics(t)[dropped("from_peer")]-b0[dropped("from_peer")] == 2*n
		})
		return delta(n0, node.Metrics(t)), delta(b0, b.Metrics(t))
	}

	// Phase 1: C is down.
	testnet.IP(t, "-n", s.Switch, "link", "set", fmt.Sprintf("p%d", s.NodePort(2)), "down")
	c.Cmd.Process.Kill()
	nd, _ := burst("C down")
	t.Logf("C down: node sent %v frames, send errors for C: %v (the kernel accepts frames for a dead on-link host)",
		nd[`gopmtud_frames_sent_total{transport="routed"}`], nd[sendErrors(s.Nodes[2])])

	// Phase 2: C is unreachable.
	testnet.IP(t, "-n", s.Nodes[0], "route", "add", "unreachable", s.V4[2]+"/32")
	testnet.IP(t, "-n", s.Nodes[0], "-6", "route", "add", "unreachable", s.V6[2]+"/128")
	nd, _ = burst("C unreachable")
	// Errors are counted under the node's name: both families of C.
	if got := nd[sendErrors(s.Nodes[2])]; got != 2*n {
		t.Errorf("C unreachable: send errors for %s grew by %v, want %d", s.Nodes[2], got, 2*n)
	}
	if got := nd[sendErrors(s.Nodes[1])]; got != 0 {
		t.Errorf("C unreachable: %v send errors counted for B (%s)", got, s.Nodes[1])
	}
	if got := nd[`gopmtud_frames_sent_total{transport="routed"}`]; got != 2*n {
		t.Errorf("C unreachable: %v frames sent, want %d (B only)", got, 2*n)
	}
	if body, ok := node.Ready(); !ok {
		t.Errorf("node not ready while one peer is unreachable: %s", body)
	}
	t.Logf("C unreachable: %v send errors for %s; B got all %d copies", nd[sendErrors(s.Nodes[2])], s.Nodes[2], 2*n)

	// Phase 3: C is back.
	testnet.IP(t, "-n", s.Nodes[0], "route", "del", "unreachable", s.V4[2]+"/32")
	testnet.IP(t, "-n", s.Nodes[0], "-6", "route", "del", "unreachable", s.V6[2]+"/128")
	testnet.IP(t, "-n", s.Switch, "link", "set", fmt.Sprintf("p%d", s.NodePort(2)), "up")
	c = testnet.StartDaemon(t, s.Nodes[2], pmtud, nodeArgs(s, 2), nil)
	c.WaitReady(t, 10*time.Second)
	c0 := c.Metrics(t)
	nd, _ = burst("C back")
	// At least: copies sent while C was down may still sit in the node's
	// neighbour queue (C's address was unresolved) and arrive now.
	testnet.WaitFor(t, "C receiving again", 3*time.Second, func() bool {
		return c.Metrics(t)[dropped("from_peer")]-c0[dropped("from_peer")] >= 2*n
	})
	if got := nd[sendErrors(s.Nodes[2])]; got != 0 {
		t.Errorf("C back: %v send errors", got)
	}
}

func delta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}
