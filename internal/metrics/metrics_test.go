package metrics

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

func TestEveryDropReasonIsExportedAtZero(t *testing.T) {
	m := New("routed")
	m.Dropped(drop.Duplicate).Inc()
	var b strings.Builder
	b.WriteString("# HELP gopmtud_packets_dropped_total Packets not relayed, by reason.\n# TYPE gopmtud_packets_dropped_total counter\n")
	var lines []string
	for _, r := range drop.All() {
		v := "0"
		if r == drop.Duplicate {
			v = "1"
		}
		lines = append(lines, `gopmtud_packets_dropped_total{reason="`+r.String()+`"} `+v+"\n")
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, ""))
	if got := familyText(t, m, "gopmtud_packets_dropped_total"); got != b.String() {
		t.Fatalf("got:\n%s\nwant:\n%s", got, b.String())
	}
}

func TestRelayedByFamily(t *testing.T) {
	m := New("l2")
	m.Relayed6.Inc()
	if got := m.Relayed6.Value(); got != 1 {
		t.Fatalf("relayed ipv6 = %v", got)
	}
	if got := m.Relayed4.Value(); got != 0 {
		t.Fatalf("relayed ipv4 = %v", got)
	}
	want := "gopmtud_messages_relayed_total{family=\"ipv6\"} 1\n"
	if got := familyText(t, m, "gopmtud_messages_relayed_total"); !strings.HasSuffix(got, want) {
		t.Fatalf("got:\n%s", got)
	}
}
