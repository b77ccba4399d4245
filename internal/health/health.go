// Package health serves /healthz (liveness) and /readyz (readiness) with a
// line of detail per check, so `curl <node>:4441/readyz` tells an operator why.
package health

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// Check returns nil when healthy, else what is wrong.
type Check func() error

// Checker holds named liveness and readiness checks.
type Checker struct {
	mu    sync.Mutex
	live  map[string]entry
	ready map[string]entry
}

type entry struct {
	check  Check
	detail func() string // optional: shown also when the check passes
}

// New returns an empty Checker (healthy and ready until checks are added).
func New() *Checker {
	return &Checker{live: map[string]entry{}, ready: map[string]entry{}}
}

// Live adds a liveness check: failing it means "restart me".
func (c *Checker) Live(name string, f Check) {
	c.mu.Lock()
	c.live[name] = entry{check: f}
	c.mu.Unlock()
}

// Ready adds a readiness check: failing it means "I am not doing my job yet".
func (c *Checker) Ready(name string, f Check) { c.ReadyDetail(name, f, nil) }

// ReadyDetail adds a readiness check whose detail is shown even while it
// passes (e.g. "API unreachable, relaying to the 12 last known peers").
func (c *Checker) ReadyDetail(name string, f Check, detail func() string) {
	c.mu.Lock()
	c.ready[name] = entry{check: f, detail: detail}
	c.mu.Unlock()
}

// Handler serves /healthz and /readyz.
func (c *Checker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { c.serve(w, c.live) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { c.serve(w, c.ready) })
	return mux
}

func (c *Checker) serve(w http.ResponseWriter, checks map[string]entry) {
	c.mu.Lock()
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	entries := make([]entry, len(names))
	for i, n := range names {
		entries[i] = checks[n]
	}
	c.mu.Unlock()

	status, body := http.StatusOK, ""
	for i, n := range names {
		switch err := entries[i].check(); {
		case err != nil:
			status = http.StatusServiceUnavailable
			body += fmt.Sprintf("[-] %s: %v\n", n, err)
		case entries[i].detail != nil:
			body += fmt.Sprintf("[+] %s ok: %s\n", n, entries[i].detail())
		default:
			body += fmt.Sprintf("[+] %s ok\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if status == http.StatusOK {
		body += "ok\n"
	}
	fmt.Fprint(w, body)
}
