package testnet

import (
	"strings"
	"testing"
	"time"
)

// Decided reports whether the daemon has decided every packet NFLOG
// delivered to it: each one is either relayed or dropped with a reason, so
// received <= relayed + dropped once nothing is in flight inside it.
func Decided(m map[string]float64) bool {
	var done float64
	for k, v := range m {
		if strings.HasPrefix(k, "gopmtud_messages_relayed_total") || strings.HasPrefix(k, "gopmtud_packets_dropped_total") {
			done += v
		}
	}
	return m["gopmtud_packets_received_total"] <= done
}

// WaitSettled waits until every daemon has decided everything it received
// and its received count held still between two scrapes 100 ms apart: a
// positive signal that the packets in flight have been dealt with, instead
// of a sleep. It returns the last scrape of each daemon.
func WaitSettled(t testing.TB, timeout time.Duration, ds ...*Daemon) []map[string]float64 {
	t.Helper()
	last := make([]map[string]float64, len(ds))
	prev := make([]float64, len(ds))
	for i := range prev {
		prev[i] = -1
	}
	WaitFor(t, "every daemon settled", timeout, func() bool {
		ok := true
		for i, d := range ds {
			last[i] = d.Metrics(t)
			r := last[i]["gopmtud_packets_received_total"]
			if r != prev[i] || !Decided(last[i]) {
				ok = false
			}
			prev[i] = r
		}
		if !ok {
			time.Sleep(80 * time.Millisecond) // with WaitFor's 20 ms: 100 ms between scrapes
		}
		return ok
	})
	return last
}
