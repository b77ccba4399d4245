package capture

import (
	"context"
	"errors"
	"sync"
)

// Set reads the groups of a per-CPU capture as one source: every reader
// hands its packets to the same handler, one reader at a time (a shared
// Config.Hooks), so the handler needs no locking of its own.
type Set struct {
	ls []*Listener
}

// OpenSet opens one listener per binding of plan, each with cfg but its own
// group, pinned to its CPU. If one fails, those opened are closed again.
func OpenSet(cfg Config, plan []Binding) (*Set, error) {
	hooks := new(sync.Mutex)
	s := &Set{}
	for _, b := range plan {
		c := cfg
		c.Group, c.Pin, c.CPU, c.Hooks = b.Group, true, b.CPU, hooks
		l, err := Open(c)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.ls = append(s.ls, l)
	}
	return s, nil
}

// RunBatched runs every listener with handle and flush (Listener.RunBatched)
// until ctx is done, or one fails for good: then it stops the others and
// returns that error.
func (s *Set) RunBatched(ctx context.Context, handle func(*Packet), flush func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(s.ls))
	for _, l := range s.ls {
		go func() { errs <- l.RunBatched(ctx, handle, flush) }()
	}
	var first error
	for range s.ls {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Up reports whether every listener is up.
func (s *Set) Up() bool {
	for _, l := range s.ls {
		if !l.Up() {
			return false
		}
	}
	return len(s.ls) > 0
}

// Stats sums the listeners' counters.
func (s *Set) Stats() Stats {
	var sum Stats
	for _, l := range s.ls {
		st := l.Stats()
		sum.Received += st.Received
		sum.Overruns += st.Overruns
		sum.Lost += st.Lost
		sum.Restarts += st.Restarts
	}
	return sum
}

// Close closes every listener.
func (s *Set) Close() error {
	var errs []error
	for _, l := range s.ls {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
