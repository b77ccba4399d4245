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

// startServiceWatch starts the Service and EndpointSlice watch behind the
// targeted fan-out. Until its first table the relay sends to every peer,
// so it never holds readiness back; the detail tells which it is doing.
func startServiceWatch(ctx context.Context, cfg config.Config, m *metrics.Metrics, checks *health.Checker, log *slog.Logger, setFanout func(*fanout.Table)) error {
	rc, err := kube.RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	svcs, slices, err := kube.NewServiceClients(rc)
	if err != nil {
		return err
	}
	w, err := kube.NewServiceWatcher(svcs, slices, kube.ServiceConfig{
		Logger: log.With("component", "kubernetes"), Registerer: m.Registry,
	}, setFanout)
	if err != nil {
		return err
	}
	checks.ReadyDetail("fanout", func() error { return nil }, w.Detail)
	go func() {
		if err := w.Run(ctx); err != nil {
			log.Error("kubernetes service watch ended", "err", err)
		}
	}()
	log.Info("targeted fan-out: watching Services and EndpointSlices")
	return nil
}
