package testnet

import (
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet/proc"
)

// Decided reports whether the daemon has decided every packet NFLOG
// delivered to it (see proc.Metrics.Decided).
func Decided(m map[string]float64) bool { return proc.Metrics(m).Decided() }

// WaitSettled waits until every daemon has decided everything it received
// and its received count held still between two scrapes 100 ms apart: a
// positive signal that the packets in flight have been dealt with, instead
// of a sleep. It returns the last scrape of each daemon.
func WaitSettled(t testing.TB, timeout time.Duration, ds ...*Daemon) []map[string]float64 {
	t.Helper()
	var scrape []func() (proc.Metrics, error)
	for _, d := range ds {
		scrape = append(scrape, d.Scrape)
	}
	last, ok := proc.Settle(scrape, 100*time.Millisecond, timeout)
	if !ok {
		t.Fatalf("daemons not settled within %v (last scrapes: %v)", timeout, last)
	}
	out := make([]map[string]float64, len(last))
	for i, m := range last {
		out[i] = m
	}
	return out
}
