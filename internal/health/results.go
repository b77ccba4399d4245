package health

import "sort"

// Result is one readiness check's outcome.
type Result struct {
	Name   string
	OK     bool
	Detail string // the error, or the check's detail while it passes
}

// ReadyResults runs the readiness checks, as /readyz does, and returns
// their outcomes by name and whether all passed (for `go-pmtud status`).
func (c *Checker) ReadyResults() (bool, []Result) {
	c.mu.Lock()
	entries := make(map[string]entry, len(c.ready))
	for n, e := range c.ready {
		entries[n] = e
	}
	c.mu.Unlock()
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	all := true
	out := make([]Result, 0, len(names))
	for _, n := range names {
		e := entries[n]
		r := Result{Name: n, OK: true}
		if err := e.check(); err != nil {
			r.OK, r.Detail, all = false, err.Error(), false
		} else if e.detail != nil {
			r.Detail = e.detail()
		}
		out = append(out, r)
	}
	return all, out
}
