package daemon

import (
	"context"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/textpages"
)

// startupGrace bounds the wait for readiness before the start-up pages are
// released anyway: a node whose peers never resolve is still running.
const startupGrace = 30 * time.Second

// releaseStartupPages unmaps the binary's pages once the daemon is ready,
// when start-up code has run for the last time (textpages explains why):
// RSS then counts what the relay goes on using.
func (d *daemon) releaseStartupPages(ctx context.Context) error {
	deadline := time.Now().Add(startupGrace)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready, _ := d.checks.ReadyResults(); ready || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	n, err := textpages.Release()
	if err != nil {
		d.log.Warn("could not release start-up pages", "err", err)
		return nil
	}
	d.log.Info("released start-up pages of the binary", "mapped_kb", n/1024)
	return nil
}
