package daemon

import (
	"context"
	"log/slog"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// startKubernetes starts the Node watch when enabled. (Wired once the
// Kubernetes peer source lands.)
func startKubernetes(ctx context.Context, cfg config.Config, registry *peers.Registry, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) error {
	return nil
}
