package daemon

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// uplinkFollower looks at the uplinks again every interval and tells its
// subscribers when they changed: routes moved (empty --iface), a link was
// recreated, a second uplink appeared. While they cannot be found, the last
// known ones stay in use and Err says why.
type uplinkFollower struct {
	src      linkSource
	names    []string
	interval time.Duration
	log      *slog.Logger

	mu    sync.Mutex
	cur   uplinks
	err   error
	onNew []func(uplinks)
}

func newUplinkFollower(src linkSource, names []string, first uplinks, log *slog.Logger) *uplinkFollower {
	return &uplinkFollower{src: src, names: names, interval: time.Second, log: log, cur: first}
}

// subscribe registers fn, called from Run's goroutine after a change.
func (f *uplinkFollower) subscribe(fn func(uplinks)) { f.onNew = append(f.onNew, fn) }

// Current returns the uplinks in use.
func (f *uplinkFollower) Current() uplinks {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// Err says why the uplinks could not be looked up last time, or nil.
func (f *uplinkFollower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *uplinkFollower) Run(ctx context.Context) error {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.check()
	}
}

// check looks once and notifies the subscribers of a change.
func (f *uplinkFollower) check() {
	next, err := findUplinks(f.src, f.names)
	f.mu.Lock()
	was, hadErr := f.cur, f.err
	f.err = err
	changed := err == nil && !next.same(was)
	if changed {
		f.cur = next
	}
	f.mu.Unlock()
	switch {
	case err != nil && hadErr == nil:
		f.log.Warn("uplinks cannot be found; keeping the last ones", "err", err, "uplinks", was.String())
	case err == nil && hadErr != nil:
		f.log.Info("uplinks found again", "uplinks", next.String())
	}
	if !changed {
		return
	}
	f.log.Warn("uplinks changed", "old", describe(was), "new", describe(next))
	for _, fn := range f.onNew {
		fn(next)
	}
}

// describe names each uplink with its index and MAC, for the log.
func describe(u uplinks) []string {
	out := make([]string, len(u))
	for i, ifi := range u {
		out[i] = ifi.Name + "#" + strconv.Itoa(ifi.Index) + "/" + ifi.HardwareAddr.String()
	}
	return out
}
