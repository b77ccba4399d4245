package proc

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	in := `# HELP x y
# TYPE gopmtud_frames_sent_total counter
gopmtud_frames_sent_total{transport="l2"} 4
gopmtud_frames_sent_total{transport="routed"} 2
gopmtud_packets_received_total 7
gopmtud_odd{a="x y}"} 1.5 1700000000
garbage
`
	m, err := ParseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("gopmtud_frames_sent_total"); got != 6 {
		t.Errorf("frames = %v, want 6", got)
	}
	if got := m[`gopmtud_frames_sent_total{transport="l2"}`]; got != 4 {
		t.Errorf("l2 frames = %v, want 4", got)
	}
	if got := m.Sum("gopmtud_packets_received_total"); got != 7 {
		t.Errorf("received = %v, want 7", got)
	}
	if got := m.Sum("gopmtud_odd"); got != 1.5 {
		t.Errorf("odd = %v, want 1.5 (a timestamp follows the value)", got)
	}
	if len(m) != 4 {
		t.Errorf("%d samples, want 4: %v", len(m), m)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("gopmtud_a{b=\"c\"} 1 2\n# x\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseMetrics(strings.NewReader(s))
	})
}
