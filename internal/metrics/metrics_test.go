package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

func TestEveryDropReasonIsExportedAtZero(t *testing.T) {
	m := New("routed")
	n, err := testutil.GatherAndCount(m.Registry, "gopmtud_packets_dropped_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(drop.All()) {
		t.Fatalf("dropped series = %d, want one per reason (%d)", n, len(drop.All()))
	}
	m.Dropped(drop.Duplicate).Inc()
	want := `
# HELP gopmtud_packets_dropped_total Packets not relayed, by reason.
# TYPE gopmtud_packets_dropped_total counter
`
	var b strings.Builder
	b.WriteString(want)
	for _, r := range drop.All() {
		v := "0"
		if r == drop.Duplicate {
			v = "1"
		}
		b.WriteString(`gopmtud_packets_dropped_total{reason="` + r.String() + `"} ` + v + "\n")
	}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(b.String()), "gopmtud_packets_dropped_total"); err != nil {
		t.Fatal(err)
	}
}

func TestRelayedByFamily(t *testing.T) {
	m := New("l2")
	m.Relayed6.Inc()
	if got := testutil.ToFloat64(m.Relayed6); got != 1 {
		t.Fatalf("relayed ipv6 = %v", got)
	}
	if got := testutil.ToFloat64(m.Relayed4); got != 0 {
		t.Fatalf("relayed ipv4 = %v", got)
	}
}
