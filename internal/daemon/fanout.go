package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

// serviceWatch prepares the Service and EndpointSlice watch behind the
// targeted fan-out, as a component. Until its first table the relay sends
// to every peer, so it never holds readiness back; the detail tells which
// it is doing.
func serviceWatch(cfg config.Config, m *metrics.Metrics, checks *health.Checker, log *slog.Logger, setFanout func(*fanout.Table)) (func(context.Context) error, error) {
	client, err := kube.NewClient(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	w, err := kube.NewServiceWatcher(client, kube.ServiceConfig{
		Logger: log.With("component", "kubernetes"), Registerer: m.Registry,
	}, setFanout)
	if err != nil {
		return nil, err
	}
	checks.ReadyDetail("fanout", func() error { return nil }, w.Detail)
	log.Info("targeted fan-out: watching Services and EndpointSlices")
	return func(ctx context.Context) error {
		// The relay goes on to every peer if the watch ends.
		if err := w.Run(ctx); err != nil {
			log.Error("kubernetes service watch ended", "err", err)
		}
		return nil
	}, nil
}
