package daemon

import (
	"context"
	"sync"
)

// group runs the daemon's long-lived components. Each runs until ctx ends;
// a component that returns an error before that stops the whole daemon
// (the first error wins), and Wait waits for every one of them, so nothing
// outlives Run.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

func newGroup(ctx context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

// Go starts run. An error it returns while the group is still running is
// fatal: it is kept for Wait and every other component is told to stop.
func (g *group) Go(run func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := run(g.ctx)
		if err == nil || g.ctx.Err() != nil {
			return
		}
		g.mu.Lock()
		if g.err == nil {
			g.err = err
		}
		g.mu.Unlock()
		g.cancel()
	}()
}

// Wait waits until ctx ends or a component fails, then for every component
// to return, and returns the first failure.
func (g *group) Wait() error {
	<-g.ctx.Done()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Stop ends the group without an error.
func (g *group) Stop() { g.cancel() }
