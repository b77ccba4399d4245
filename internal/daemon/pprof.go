package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// startPprof serves Go's profiles on addr (host:port) for `go tool pprof`,
// when addr is not empty; it is off by default because profiles expose
// internals and cost CPU while taken. The returned function stops the
// listener. The handler is ours, not net/http/pprof: that package's
// index page and symbolizer link regexp and compile expressions at start,
// about 0.4 MB of RSS in a daemon that never profiles (docs/benchmarks.md).
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
	mux.HandleFunc("/debug/pprof/", serveProfile)
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

// serveProfile answers /debug/pprof/profile?seconds=N with a CPU profile
// and /debug/pprof/<name>[?debug=N] with the named runtime profile (heap,
// allocs, goroutine, block, mutex, threadcreate), as net/http/pprof does.
func serveProfile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if name == "profile" {
		secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
		if err != nil || secs <= 0 || secs > 60 {
			secs = 30
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, "CPU profile: "+err.Error(), http.StatusInternalServerError)
			return
		}
		select {
		case <-time.After(time.Duration(secs) * time.Second):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		var names []string
		for _, p := range pprof.Profiles() {
			names = append(names, p.Name())
		}
		http.Error(w, fmt.Sprintf("no profile %q; have profile (CPU) and %s", name, strings.Join(names, ", ")), http.StatusNotFound)
		return
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	_ = p.WriteTo(w, debug)
}
