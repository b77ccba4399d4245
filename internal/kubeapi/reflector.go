package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Getter makes a GET request; *Client is one.
type Getter interface {
	Get(ctx context.Context, path string, query url.Values) (io.ReadCloser, error)
}

// Reflector keeps a cache of one collection's objects up to date: it lists
// them, then watches from the list's resource version, with bookmarks; a
// watch that expired (410 Gone) lists again; failed requests are retried
// with backoff while the cache is kept. V is what is cached of an object:
// Decode decodes and trims it.
type Reflector[V any] struct {
	Client   Getter
	Path     string // collection, e.g. NodesPath
	Selector string // label selector, applied by the server
	// Decode decodes one object with into (once) and returns its metadata
	// and cached value.
	Decode func(into Into) (Meta, V, error)
	// Same reports whether a modified object leaves the cached facts as
	// they were; then OnChange is not called.
	Same func(old, new V) bool
	// OnChange is called after the cache changed; OnContact after every
	// successful request and event; OnError after a failed request (not a
	// routine expiry). Each may be nil.
	OnChange  func()
	OnContact func()
	OnError   func(what string, err error)

	mu     sync.Mutex
	items  map[string]V
	synced atomic.Bool
}

// Backoff bounds of the retries, as client-go's reflector has them.
const (
	minBackoff = 800 * time.Millisecond
	maxBackoff = 30 * time.Second
	// A watch is ended by the server after 5 to 10 minutes.
	minWatchTimeout = 5 * time.Minute
	// listPage is the page size of a consistent list.
	listPage = 500
)

// HasSynced reports whether the first list is in the cache.
func (r *Reflector[V]) HasSynced() bool { return r.synced.Load() }

// List returns the cached values, in no order.
func (r *Reflector[V]) List() []V {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]V, 0, len(r.items))
	for _, v := range r.items {
		out = append(out, v)
	}
	return out
}

// Len is the number of cached objects.
func (r *Reflector[V]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// Run lists and watches until ctx is done.
func (r *Reflector[V]) Run(ctx context.Context) {
	bo := backoff{next: minBackoff}
	rv, fromCache := "", true
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = r.list(ctx, fromCache); err != nil {
				r.fail(ctx, "list", err)
				bo.wait(ctx)
				continue
			}
			bo.reset()
		}
		start := time.Now()
		events, err := r.watch(ctx, &rv)
		switch {
		case ctx.Err() != nil:
			return
		case IsGone(err):
			// Our version was compacted away: list again, consistently,
			// so the cache cannot go back in time.
			rv, fromCache = "", false
			continue
		case err != nil:
			r.fail(ctx, "watch", err)
			bo.wait(ctx)
		case events == 0 && time.Since(start) < time.Second:
			bo.wait(ctx) // a stream that ends at once: do not spin
		default:
			bo.reset()
		}
	}
}

func (r *Reflector[V]) fail(ctx context.Context, what string, err error) {
	if ctx.Err() == nil && r.OnError != nil {
		r.OnError(what, err)
	}
}

func (r *Reflector[V]) contact() {
	if r.OnContact != nil {
		r.OnContact()
	}
}

func (r *Reflector[V]) changed() {
	if r.OnChange != nil {
		r.OnChange()
	}
}

// list reads the whole collection into a new cache and returns its
// resource version. The first list comes from the API server's watch
// cache (resourceVersion=0), which spares etcd when thousands of daemons
// start; a list after an expiry is a consistent, paged read. Either way
// items are decoded one at a time as the response streams in.
func (r *Reflector[V]) list(ctx context.Context, fromCache bool) (string, error) {
	items := make(map[string]V)
	q := url.Values{}
	if r.Selector != "" {
		q.Set("labelSelector", r.Selector)
	}
	if fromCache {
		// Served whole from the cache in one response; paging it would
		// turn each further page into a read from etcd.
		q.Set("resourceVersion", "0")
	} else {
		q.Set("limit", strconv.Itoa(listPage))
	}
	var lm ListMeta
	for {
		page, err := r.listPage(ctx, q, items)
		if err != nil {
			return "", err
		}
		lm = page
		if lm.Continue == "" {
			break
		}
		q.Del("resourceVersion")
		q.Set("continue", lm.Continue)
	}
	if lm.ResourceVersion == "" {
		return "", errors.New("list without a resource version")
	}
	r.mu.Lock()
	r.items = items
	r.mu.Unlock()
	r.synced.Store(true)
	r.contact()
	r.changed()
	return lm.ResourceVersion, nil
}

func (r *Reflector[V]) listPage(ctx context.Context, q url.Values, items map[string]V) (ListMeta, error) {
	body, err := r.Client.Get(ctx, r.Path, q)
	if err != nil {
		return ListMeta{}, err
	}
	defer body.Close()
	return DecodeList(body, func(into Into) error {
		m, v, err := r.Decode(into)
		if err != nil {
			return err
		}
		items[m.Key()] = v
		return nil
	})
}

// watch applies the events of one watch request to the cache, keeping
// *rv at the last version seen, until the stream ends. It returns how many
// events came; a stream that breaks is not an error (the next request
// tells whether the server is there).
func (r *Reflector[V]) watch(ctx context.Context, rv *string) (int, error) {
	q := url.Values{"watch": {"1"}, "resourceVersion": {*rv}, "allowWatchBookmarks": {"true"},
		"timeoutSeconds": {strconv.Itoa(int((minWatchTimeout + rand.N(minWatchTimeout)) / time.Second))}}
	if r.Selector != "" {
		q.Set("labelSelector", r.Selector)
	}
	body, err := r.Client.Get(ctx, r.Path, q)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	r.contact()
	dec := NewEventDecoder(body)
	var ev Event
	for n := 0; ; n++ {
		err := dec.Next(&ev)
		var se *StatusError
		switch {
		case errors.As(err, &se):
			return n, err
		case err != nil:
			return n, nil
		}
		r.contact()
		if err := r.apply(&ev, rv); err != nil {
			return n, err
		}
	}
}

// apply changes the cache by one event.
func (r *Reflector[V]) apply(ev *Event, rv *string) error {
	m, v, err := r.Decode(func(v any) error { return json.Unmarshal(ev.Object, v) })
	if err != nil {
		return err
	}
	if m.ResourceVersion != "" {
		*rv = m.ResourceVersion
	}
	if ev.Type == Bookmark {
		return nil
	}
	key := m.Key()
	r.mu.Lock()
	old, had := r.items[key]
	if ev.Type == Deleted {
		delete(r.items, key)
	} else {
		r.items[key] = v
	}
	r.mu.Unlock()
	if ev.Type == Deleted && !had {
		return nil
	}
	if ev.Type == Deleted || !had || r.Same == nil || !r.Same(old, v) {
		r.changed()
	}
	return nil
}

// backoff doubles a wait from minBackoff to maxBackoff, with jitter.
type backoff struct{ next time.Duration }

func (b *backoff) reset() { b.next = minBackoff }

func (b *backoff) wait(ctx context.Context) {
	d := b.next + rand.N(b.next/2+1)
	b.next = min(2*b.next, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
