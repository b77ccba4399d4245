package daemon

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/inject"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// openTunnelReceiver opens the receiving end of the tunnel transport when
// it is ours (nil otherwise): peers' copies arrive on --tunnel-port and are
// injected through --tunnel-device. Only nodes using the tunnel transport
// run it, so no other node opens a port or creates a device; all nodes of
// a cluster must therefore use the same transport (during a change of
// transport, copies to not-yet-switched nodes are lost until they switch).
//
// Readiness includes it: the socket receiving and the device up, with the
// host setting that would defeat IPv4 injection in the detail.
func openTunnelReceiver(cfg config.Config, registry *peers.Registry, limits ptb.Limits, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) (*inject.Receiver, error) {
	if k, _ := transport.Lookup(cfg.Transport); !k.Receiver {
		return nil, nil
	}
	r, err := inject.Open(inject.Config{
		Port:   cfg.TunnelPort,
		Device: cfg.TunnelDevice,
		// Datagrams only from current peers: an atomic snapshot, so peers
		// that leave are refused at once.
		IsPeer:     func(a netip.Addr) bool { return registry.Snapshot().Contains(a) },
		Limits:     limits,
		Logger:     log.With("component", "tunnel"),
		Registerer: m.Registry,
	})
	if err != nil {
		return nil, err
	}
	checks.ReadyDetail("tunnel", r.Err, r.Detail)
	return r, nil
}

// runTunnelReceiver returns a component that runs r until ctx ends. If the
// socket fails, readiness turns red (r.Err) and the error is logged;
// relaying goes on.
func runTunnelReceiver(r *inject.Receiver, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := r.Run(ctx); err != nil {
			log.Error("tunnel receiver stopped", "err", err)
		}
		return nil
	}
}
