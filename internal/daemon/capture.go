package daemon

import (
	"context"
	"fmt"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// packetSource is what the daemon needs of the NFLOG listener; the
// listener owns its restarts and statistics (capture.Listener), a test
// uses a fake.
type packetSource interface {
	RunBatched(ctx context.Context, handle func(*capture.Packet), flush func()) error
	Up() bool
	Stats() capture.Stats
	Close() error
}

// captureRunner feeds captured packets to the packet path until ctx ends.
// If the listener gives up (it restarts itself a bounded number of times),
// the error ends the daemon: its supervisor restarts the process.
type captureRunner struct {
	src    packetSource
	group  uint16
	handle func(*capture.Packet) // each packet of a receive
	flush  func()                // then once: sends what handle kept
	m      *metrics.Metrics
}

func (c *captureRunner) Run(ctx context.Context) error {
	c.m.CaptureUp.Set(1)
	err := c.src.RunBatched(ctx, c.handle, c.flush)
	if ctx.Err() != nil {
		return nil
	}
	c.m.CaptureUp.Set(0)
	return fmt.Errorf("capture on nflog group %d: %w", c.group, err)
}

// register adds the capture's readiness check and exports the listener's
// counters, which only it knows: overruns and lost messages are what a
// burst bigger than the NFLOG buffer costs. Overruns do not fail readiness
// (capture goes on), but the detail shows them.
func (c *captureRunner) register(checks *health.Checker) {
	checks.ReadyDetail("capture", func() error {
		if !c.src.Up() {
			return fmt.Errorf("nflog group %d is not receiving", c.group)
		}
		return nil
	}, func() string {
		st := c.src.Stats()
		return fmt.Sprintf("nflog group %d: %d received, %d lost in %d buffer overruns, %d restarts",
			c.group, st.Received, st.Lost, st.Overruns, st.Restarts)
	})
	for _, s := range []struct {
		name, help string
		get        func(capture.Stats) uint64
	}{
		{"gopmtud_capture_overruns_total", "NFLOG receive buffer overruns (ENOBUFS): the kernel dropped logged packets.", func(s capture.Stats) uint64 { return s.Overruns }},
		{"gopmtud_capture_lost_total", "Packets the kernel logged to NFLOG that go-pmtud never read (sequence gaps).", func(s capture.Stats) uint64 { return s.Lost }},
		{"gopmtud_capture_restarts_total", "NFLOG socket reopens after a fatal receive error.", func(s capture.Stats) uint64 { return s.Restarts }},
	} {
		c.m.Registry.MustRegister(expo.NewCounterFunc(expo.Opts{Name: s.name, Help: s.help},
			func() float64 { return float64(s.get(c.src.Stats())) }))
	}
}
