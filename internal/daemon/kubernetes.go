package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

// kubernetesWatch prepares the Node watch when enabled (--kubernetes=true,
// or auto inside a cluster); nil when it is not. Its Run never fails
// because the API server is away: the watch retries while the last known
// peers stay in use.
func kubernetesWatch(cfg config.Config, registry *peers.Registry, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) (func(context.Context) error, error) {
	if !kubernetesOn(cfg, log) {
		return nil, nil
	}
	if cfg.NodeName == "" {
		return nil, fmt.Errorf("--kubernetes needs --nodename (PMTUD_NODENAME from the downward API) so that this node is not its own peer")
	}
	client, err := kube.NewClient(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	w, err := kube.New(client, kube.Config{
		NodeName:      cfg.NodeName,
		AddressType:   cfg.NodeAddressType,
		LabelSelector: cfg.NodeSelector,
		Logger:        log.With("component", "kubernetes"),
		Registerer:    m.Registry,
	}, func(list []peers.Peer) { registry.Update(kube.Source, list) })
	if err != nil {
		return nil, err
	}
	checks.ReadyDetail("kubernetes", w.Ready, w.Detail)
	log.Info("watching Kubernetes nodes", "address_type", cfg.NodeAddressType, "selector", cfg.NodeSelector)
	return func(ctx context.Context) error {
		// The relay goes on with the last known peers if the watch ends.
		if err := w.Run(ctx); err != nil {
			log.Error("kubernetes node watch ended", "err", err)
		}
		return nil
	}, nil
}

// kubernetesOn reports whether the Kubernetes watches run: --kubernetes
// true, or auto inside a cluster (or with a kubeconfig).
func kubernetesOn(cfg config.Config, log *slog.Logger) bool {
	switch cfg.Kubernetes {
	case "false":
		return false
	case "auto":
		if cfg.Kubeconfig == "" && !kube.InCluster() {
			log.Info("not in a Kubernetes cluster: peers from --peers only")
			return false
		}
	}
	return true
}
