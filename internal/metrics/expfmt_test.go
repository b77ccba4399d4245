package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// Prometheus's own text parser (a test-only dependency) reads every family
// the daemon exports, with its type.
func TestPrometheusParsesTheDaemonsMetrics(t *testing.T) {
	m := New("l2")
	m.SendErrors.WithLabelValues(`node "a"\b`).Inc()
	m.Peers.WithLabelValues("static").Set(2)
	m.RelayLatency.Observe(30e-6)
	m.Fanout.Observe(2)
	m.Dropped(drop.Duplicate).Inc()
	fams := m.Registry.Gather()
	var b strings.Builder
	if err := expo.WriteText(&b, fams); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(parsed) != len(fams) {
		t.Fatalf("parsed %d families, wrote %d", len(parsed), len(fams))
	}
	for _, f := range fams {
		p := parsed[f.Name]
		if p == nil || !strings.EqualFold(p.GetType().String(), f.Type.String()) || p.GetHelp() != f.Help || len(p.GetMetric()) != len(f.Series) {
			t.Errorf("%s: parsed as %v", f.Name, p)
		}
	}
	if got := parsed["gopmtud_send_errors_total"].GetMetric()[0].GetLabel()[0].GetValue(); got != `node "a"\b` {
		t.Errorf("peer label read back as %q", got)
	}
	if h := parsed["gopmtud_relay_latency_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetBucket()[2].GetCumulativeCount() != 0 || h.GetBucket()[3].GetCumulativeCount() != 1 {
		t.Errorf("latency histogram read back as %v", h)
	}
}
