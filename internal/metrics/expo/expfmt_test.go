package expo

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Prometheus's own parser (test-only dependency) reads what we write.
func TestPrometheusParsesOurText(t *testing.T) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(goldenText))
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 5 {
		t.Fatalf("%d families", len(fams))
	}
	g := fams["t_gauge"].GetMetric()[0]
	if g.GetGauge().GetValue() != -3 || g.GetLabel()[0].GetValue() != "q\"uo\\te\n" {
		t.Fatalf("gauge %v", g)
	}
	if fams["t_counter_total"].GetHelp() != "A counter.\nSecond \\ line." {
		t.Fatalf("help %q", fams["t_counter_total"].GetHelp())
	}
	h := fams["t_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 4 || len(h.GetBucket()) != 4 || h.GetBucket()[2].GetCumulativeCount() != 3 {
		t.Fatalf("histogram %v", h)
	}
	if v := fams["t_vec_total"].GetMetric(); len(v) != 3 || v[1].GetCounter().GetValue() != 1e6 {
		t.Fatalf("vector %v", v)
	}
}
