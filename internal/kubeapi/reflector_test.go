package kubeapi_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/kubeapi/fakeapi"
)

func node(name, addr string) map[string]any {
	return map[string]any{"metadata": map[string]any{"name": name, "labels": map[string]any{"big": "x"}},
		"status": map[string]any{"addresses": []any{map[string]any{"type": "InternalIP", "address": addr}},
			"images": []any{map[string]any{"names": []any{"img"}}}}}
}

// nodeReflector caches "name addr" of every Node.
type nodeReflector struct {
	r       *kubeapi.Reflector[string]
	changes chan struct{}
	errors  atomic.Int64
}

func startNodes(t *testing.T, s *fakeapi.Server) *nodeReflector {
	t.Helper()
	c, err := kubeapi.New(kubeapi.Config{Server: s.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	nr := &nodeReflector{changes: make(chan struct{}, 1000)}
	nr.r = &kubeapi.Reflector[string]{Client: c, Path: kubeapi.NodesPath,
		Decode: func(into kubeapi.Into) (kubeapi.Meta, string, error) {
			var n kubeapi.Node
			err := into(&n)
			v := n.Metadata.Name
			for _, a := range n.Status.Addresses {
				v += " " + a.Address
			}
			return n.Metadata, v, err
		},
		Same:     func(a, b string) bool { return a == b },
		OnChange: func() { nr.changes <- struct{}{} },
		OnError:  func(string, error) { nr.errors.Add(1) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { nr.r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); c.CloseIdle() })
	return nr
}

// waitFor waits until the cache holds exactly want.
func (nr *nodeReflector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		got := nr.r.List()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-nr.changes:
		case <-deadline:
			t.Fatalf("cache %q, want %q", got, want)
		}
	}
}

func TestReflectorListsAndWatches(t *testing.T) {
	s := fakeapi.New(t)
	s.Put(kubeapi.NodesPath, node("a", "10.0.0.1"))
	s.Put("/api/v1/other", node("o", "10.0.0.9"))
	nr := startNodes(t, s)
	nr.waitFor(t, "a 10.0.0.1")
	if !nr.r.HasSynced() {
		t.Error("not synced after the list")
	}
	s.Put(kubeapi.NodesPath, node("b", "10.0.0.2"))
	nr.waitFor(t, "a 10.0.0.1", "b 10.0.0.2")
	s.Put(kubeapi.NodesPath, node("a", "10.0.0.11"))
	nr.waitFor(t, "a 10.0.0.11", "b 10.0.0.2")
	s.Delete(kubeapi.NodesPath, "/b")
	nr.waitFor(t, "a 10.0.0.11")

	// A modification that leaves the cached value alone is no change.
	for len(nr.changes) > 0 {
		<-nr.changes
	}
	s.Put(kubeapi.NodesPath, node("a", "10.0.0.11"))
	s.Bookmark(kubeapi.NodesPath)
	s.Put(kubeapi.NodesPath, node("c", "10.0.0.3"))
	nr.waitFor(t, "a 10.0.0.11", "c 10.0.0.3")
	if n := len(nr.changes); n != 0 {
		t.Errorf("%d extra changes", n)
	}
	if s.Lists() != 1 || nr.errors.Load() != 0 {
		t.Errorf("%d lists, %d errors; want 1 and 0", s.Lists(), nr.errors.Load())
	}
}

func TestReflectorRelistsWhenGone(t *testing.T) {
	s := fakeapi.New(t)
	s.Put(kubeapi.NodesPath, node("a", "10.0.0.1"))
	nr := startNodes(t, s)
	nr.waitFor(t, "a 10.0.0.1")
	// The watch is told its version is gone; what changed meanwhile
	// arrives with the new list.
	s.Compact()
	s.Put(kubeapi.NodesPath, node("b", "10.0.0.2"))
	nr.waitFor(t, "a 10.0.0.1", "b 10.0.0.2")
	if s.Lists() < 2 {
		t.Errorf("%d lists, want a relist", s.Lists())
	}
	if n := nr.errors.Load(); n != 0 {
		t.Errorf("expiry counted as %d errors", n)
	}
}

func TestReflectorKeepsCacheAndRetriesOnErrors(t *testing.T) {
	s := fakeapi.New(t)
	s.Put(kubeapi.NodesPath, node("a", "10.0.0.1"))
	s.Fail.Store(true)
	nr := startNodes(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for nr.errors.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if nr.errors.Load() == 0 || nr.r.HasSynced() {
		t.Fatalf("errors %d, synced %v while the server fails", nr.errors.Load(), nr.r.HasSynced())
	}
	s.Fail.Store(false)
	nr.waitFor(t, "a 10.0.0.1")

	// The server fails and the watch breaks: the cache stays.
	s.Fail.Store(true)
	s.CloseClientConnections()
	for nr.errors.Load() < 2 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := nr.r.List(); len(got) != 1 {
		t.Errorf("cache %q after the failure", got)
	}
	s.Fail.Store(false)
	s.Put(kubeapi.NodesPath, node("b", "10.0.0.2"))
	nr.waitFor(t, "a 10.0.0.1", "b 10.0.0.2")
}
