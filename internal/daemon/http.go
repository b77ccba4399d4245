package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/status"
)

// httpServers serves /metrics and the health endpoints. The listeners are
// opened by newHTTPServers (so a taken port fails the start); Run serves
// until ctx ends and then shuts them down.
type httpServers struct {
	servers   []*http.Server
	listeners []net.Listener
	log       *slog.Logger
}

func newHTTPServers(cfg config.Config, m *metrics.Metrics, checks *health.Checker, st http.Handler, log *slog.Logger) (*httpServers, error) {
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", m.Registry.Handler())
	// Health on the metrics listener too: one port to open and probe.
	metricsMux.Handle("/healthz", checks.Handler())
	metricsMux.Handle("/readyz", checks.Handler())
	metricsMux.Handle(status.Path, st)
	h := &httpServers{log: log}
	for _, s := range []struct {
		addr    string
		handler http.Handler
	}{
		{net.JoinHostPort(cfg.MetricsAddress, strconv.Itoa(cfg.MetricsPort)), metricsMux},
		{net.JoinHostPort(cfg.HealthAddress, strconv.Itoa(cfg.HealthPort)), checks.Handler()},
	} {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			h.close()
			return nil, fmt.Errorf("listening on %s: %w", s.addr, err)
		}
		h.listeners = append(h.listeners, ln)
		h.servers = append(h.servers, &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second})
	}
	return h, nil
}

func (h *httpServers) Run(ctx context.Context) error {
	errc := make(chan error, len(h.servers))
	for i, srv := range h.servers {
		go func() { errc <- srv.Serve(h.listeners[i]) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	h.close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func (h *httpServers) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range h.servers {
		_ = s.Shutdown(ctx)
	}
	for _, ln := range h.listeners {
		ln.Close()
	}
}
