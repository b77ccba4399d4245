package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPeerStates(t *testing.T) {
	reg := prometheus.NewRegistry()
	ps := RegisterPeerStates(reg, []string{"resolved", "failed"})
	ps.Set(map[string]int{"resolved": 3, "failed": 1})
	want := `
# HELP gopmtud_peer_states Peers by reachability state on the transport (l2: resolved, unresolved, failed, not_on_segment, not_on_link).
# TYPE gopmtud_peer_states gauge
gopmtud_peer_states{state="failed"} 1
gopmtud_peer_states{state="resolved"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gopmtud_peer_states"); err != nil {
		t.Error(err)
	}
}
