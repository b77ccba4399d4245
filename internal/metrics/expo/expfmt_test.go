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

// Any label value and help text reads back the same through Prometheus's
// parser (invalid UTF-8 becomes U+FFFD first, as the registry stores it;
// the format cannot carry blanks at the start of a help text, client_golang's
// output neither).
func FuzzEscapingRoundTrip(f *testing.F) {
	f.Add("node-1", "Help.")
	f.Add("a\"b\\c\nd", "line\\one\nline two \"quoted\"")
	f.Fuzz(func(t *testing.T, value, help string) {
		help = strings.ToValidUTF8(help, "\uFFFD")
		r := NewRegistry()
		v := NewCounterVec(Opts{Name: "f_total", Help: help}, "l")
		v.WithLabelValues(value).Inc()
		r.MustRegister(v)
		var b strings.Builder
		if err := WriteText(&b, r.Gather()); err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("%v\n%q", err, b.String())
		}
		f := fams["f_total"]
		if f.GetHelp() != strings.TrimLeft(help, " \t") {
			t.Fatalf("help %q read back as %q", help, f.GetHelp())
		}
		if got, want := f.GetMetric()[0].GetLabel()[0].GetValue(), strings.ToValidUTF8(value, "\uFFFD"); got != want {
			t.Fatalf("value %q read back as %q", want, got)
		}
	})
}
