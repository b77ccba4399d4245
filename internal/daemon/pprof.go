package daemon

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves net/http/pprof on addr (host:port) for profiling, when
// addr is not empty; it is off by default because profiles expose internals
// and cost CPU while taken. The returned function stops the listener.
func startPprof(addr string, log *slog.Logger) func() {
	_, stop := servePprof(addr, log)
	return stop
}

// servePprof is startPprof that also returns the bound address (nil when off).
func servePprof(addr string, log *slog.Logger) (net.Addr, func()) {
	if addr == "" {
		return nil, func() {}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("pprof listener not started", "address", addr, "err", err)
		return nil, func() {}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener failed", "err", err)
		}
	}()
	log.Info("pprof listening", "address", ln.Addr().String())
	return ln.Addr(), func() { srv.Close() }
}
