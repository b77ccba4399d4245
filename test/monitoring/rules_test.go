// Package monitoring checks the alert rules (deploy/prometheusrule.yaml and
// the chart's copy): promtool's rule unit tests say each alert fires when it
// should and not before; the rest says each one links a runbook section
// that exists and names only metrics go-pmtud exports.
package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/go-pmtud/go-pmtud/internal/metrics"
)

const ruleFile = "../../deploy/helm/go-pmtud/files/prometheusrule-spec.yaml"

type rule struct {
	Alert       string
	Expr        string
	Annotations map[string]string
}

func rules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct{ Groups []struct{ Rules []rule } }
	if err := sigsyaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range spec.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no rules")
	}
	return out
}

// promtool returns the promtool binary: $PROMTOOL, else the one
// hack/tools/promtool.sh builds once per machine into its cache.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	if testing.Short() {
		t.Skip("-short: not building promtool")
	}
	out, err := exec.Command("bash", "../../hack/tools/promtool.sh").Output()
	if err != nil {
		t.Fatalf("building promtool: %v (set PROMTOOL to use another)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestAlertRulesWithPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", ruleFile}, {"test", "rules", "rules.test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestEveryAlertHasARunbookAndATest(t *testing.T) {
	runbook, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("rules.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules(t) {
		want := "https://github.com/go-pmtud/go-pmtud/blob/main/docs/runbook.md#" + strings.ToLower(r.Alert)
		if r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !strings.Contains(string(runbook), "\n## "+r.Alert+"\n") {
			t.Errorf("%s: no section in docs/runbook.md", r.Alert)
		}
		if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
			t.Errorf("%s: no promtool test in rules.test.yaml", r.Alert)
		}
	}
}

// An alert on a metric nobody exports can never fire.
func TestAlertsUseExportedMetrics(t *testing.T) {
	m := metrics.New("l2")
	m.SendErrors.WithLabelValues("node-b") // a vector shows only once it has a child
	m.Peers.WithLabelValues("static")
	exported := map[string]bool{"up": true}
	for _, f := range m.Registry.Gather() {
		name := f.Name
		exported[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exported[name+suffix] = true
		}
	}
	// Registered outside metrics.New: the capture counters and the tunnel
	// filter's (daemon), the Node watch's (peers/kube) and the tunnel
	// receiver's (inject; test/relay scrapes them from a daemon).
	for _, n := range []string{"gopmtud_capture_lost_total", "gopmtud_capture_overruns_total", "gopmtud_capture_restarts_total",
		"gopmtud_kubernetes_last_sync_timestamp_seconds", "gopmtud_kubernetes_synced",
		"gopmtud_tunnel_filtered_total", "gopmtud_tunnel_received_total", "gopmtud_tunnel_socket_drops_total"} {
		exported[n] = true
	}
	name := regexp.MustCompile(`\b(gopmtud_[a-z0-9_]+|process_[a-z_]+|up)\b`)
	for _, r := range rules(t) {
		for _, n := range name.FindAllString(r.Expr, -1) {
			if !exported[n] {
				t.Errorf("%s: %s is not exported", r.Alert, n)
			}
		}
	}
}
