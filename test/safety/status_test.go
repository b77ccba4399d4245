//go:build linux

package safety_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/status"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestStatusAgainstARunningDaemon runs `go-pmtud status` in a node's
// namespace, as `kubectl exec ds/go-pmtud -- go-pmtud status` would, after
// the daemon relayed one message in each family.
func TestStatusAgainstARunningDaemon(t *testing.T) {
	p := newPair(t, "pst")
	p.relays(t, p.node, 41500)

	statusCmd := func(args ...string) (string, int) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", p.node.NS, pmtud, "status"}, args...)...).Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	text, code := statusCmd()
	if code != 0 {
		t.Fatalf("status exit %d:\n%s", code, text)
	}
	for _, want := range []string{"Ready:       yes", "Capture:     up  nflog group 33", "Rule:        installed",
		"Peers:       1 (static 1), 0 unreachable", p.s.V4[1], p.s.V6[1], "2 relayed", "Last relays: 2, newest first", "mtu 1400"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	js, code := statusCmd("--json")
	var r status.Report
	if err := json.Unmarshal([]byte(js), &r); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, js)
	}
	if r.Counters.Relayed != 2 || len(r.Recent) != 2 || r.Recent[0].Family != 6 || r.Recent[1].Family != 4 ||
		r.Recent[0].Peers != 1 || !r.Capture.Up || !r.Firewall.Up || r.Node != p.s.Nodes[0] {
		t.Fatalf("report: %+v", r)
	}
	if len(r.Peers.List) != 1 || !r.Peers.List[0].Reachable { // one node, both families
		t.Fatalf("peers: %+v", r.Peers)
	}
	// Health is served on the metrics listener too.
	for _, path := range []string{"/healthz", "/readyz"} {
		if body, err := p.node.Get(path, testnet.MetricsPort); err != nil || !strings.Contains(body, "ok") {
			t.Errorf("%s on the metrics port: %v %q", path, err, body)
		}
	}
}
