package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

// startKubernetes starts the Node watch when enabled (--kubernetes=true, or
// auto inside a cluster). It never fails because the API server is away:
// the watch retries while the last known peers stay in use.
func startKubernetes(ctx context.Context, cfg config.Config, registry *peers.Registry, m *metrics.Metrics, checks *health.Checker, log *slog.Logger, setFanout func(*fanout.Table)) error {
	switch cfg.Kubernetes {
	case "false":
		return nil
	case "auto":
		if cfg.Kubeconfig == "" && !kube.InCluster() {
			log.Info("not in a Kubernetes cluster: peers from --peers only")
			return nil
		}
	}
	if cfg.NodeName == "" {
		return fmt.Errorf("--kubernetes needs --nodename (PMTUD_NODENAME from the downward API) so that this node is not its own peer")
	}
	client, err := kube.NewClient(cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	w, err := kube.New(client, kube.Config{
		NodeName:      cfg.NodeName,
		AddressType:   cfg.NodeAddressType,
		LabelSelector: cfg.NodeSelector,
		Logger:        log.With("component", "kubernetes"),
		Registerer:    m.Registry,
	}, func(list []peers.Peer) { registry.Update(kube.Source, list) })
	if err != nil {
		return err
	}
	checks.ReadyDetail("kubernetes", w.Ready, w.Detail)
	go func() {
		if err := w.Run(ctx); err != nil {
			log.Error("kubernetes node watch ended", "err", err)
		}
	}()
	log.Info("watching Kubernetes nodes", "address_type", cfg.NodeAddressType, "selector", cfg.NodeSelector)
	if cfg.TargetedFanout {
		return startServiceWatch(ctx, cfg, m, checks, log, setFanout)
	}
	return nil
}
