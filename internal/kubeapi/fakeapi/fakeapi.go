// Package fakeapi is an in-memory Kubernetes API server for tests: it
// serves list and watch (with resource versions, bookmarks and 410 Gone)
// of any collection path, holding objects as JSON. It ignores label
// selectors and authentication.
package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is the fake API server; URL is its base URL.
type Server struct {
	*httptest.Server
	// Fail makes every request fail with 500 while set.
	Fail           atomic.Bool
	lists, watches atomic.Int64

	mu      sync.Mutex
	rv      int
	objs    map[string]map[string][]byte // path -> key -> object
	history []change                     // every change, in order
	minRV   int                          // watches from below this get 410
	wake    chan struct{}                // closed and replaced on every change
}

type change struct {
	rv       int
	path     string
	ev       []byte
	bookmark bool
}

// New starts a server, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{objs: map[string]map[string][]byte{}, wake: make(chan struct{}), rv: 1}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Server.CloseClientConnections()
		s.Close()
	})
	return s
}

// Put adds or replaces an object in the collection at path; obj needs a
// metadata.name (and namespace for namespaced ones). It sets the
// resourceVersion.
func (s *Server) Put(path string, obj map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	meta, _ := obj["metadata"].(map[string]any)
	meta["resourceVersion"] = strconv.Itoa(s.rv)
	b, _ := json.Marshal(obj)
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	key := ns + "/" + name
	typ := "ADDED"
	if _, ok := s.objs[path][key]; ok {
		typ = "MODIFIED"
	}
	if s.objs[path] == nil {
		s.objs[path] = map[string][]byte{}
	}
	s.objs[path][key] = b
	s.record(path, typ, b)
}

// Delete removes the object namespace/name ("/name" for cluster objects).
func (s *Server) Delete(path, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[path][key]
	if !ok {
		return
	}
	delete(s.objs[path], key)
	s.rv++
	s.record(path, "DELETED", b)
}

// Compact forgets the history: a watch from an older version gets 410 Gone
// and running watches are sent an ERROR event with code 410.
func (s *Server) Compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	s.minRV = s.rv
	s.history = nil
	s.history = append(s.history, change{rv: -1})
	s.notify()
}

func (s *Server) record(path, typ string, obj []byte) {
	ev, _ := json.Marshal(map[string]any{"type": typ, "object": json.RawMessage(obj)})
	s.history = append(s.history, change{rv: s.rv, path: path, ev: ev})
	s.notify()
}

func (s *Server) notify() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Lists and Watches count the list and watch requests served.
func (s *Server) Lists() int64   { return s.lists.Load() }
func (s *Server) Watches() int64 { return s.watches.Load() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Fail.Load() {
		status(w, http.StatusInternalServerError, "InternalError")
		return
	}
	if r.URL.Query().Get("watch") != "" {
		s.watches.Add(1)
		s.watch(w, r)
		return
	}
	s.lists.Add(1)
	s.mu.Lock()
	items := make([]json.RawMessage, 0, len(s.objs[r.URL.Path]))
	for _, b := range s.objs[r.URL.Path] {
		items = append(items, b)
	}
	rv := s.rv
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "List", "items": items,
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(rv)}})
}

func status(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","status":"Failure","code":%d,"reason":%q,"message":"fake"}`, code, reason)
}

// watch streams the changes after the requested version until the client
// goes away or the history is compacted.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	s.mu.Lock()
	gone := from < s.minRV
	s.mu.Unlock()
	if gone {
		status(w, http.StatusGone, "Expired")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	next := 0 // index in history
	for {
		s.mu.Lock()
		var out [][]byte
		compacted := false
		for ; next < len(s.history); next++ {
			c := s.history[next]
			switch {
			case c.rv == -1:
				compacted = true
			case (c.rv > from || c.bookmark) && c.path == r.URL.Path:
				out = append(out, c.ev)
			}
		}
		wake := s.wake
		s.mu.Unlock()
		for _, ev := range out {
			_, _ = w.Write(append(ev, '\n'))
		}
		if compacted && from < s.minRV {
			_, _ = w.Write([]byte(`{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}` + "\n"))
			w.(http.Flusher).Flush()
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		}
	}
}

// Bookmark sends a BOOKMARK at the current version to running watches of path.
func (s *Server) Bookmark(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := fmt.Sprintf(`{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"%d"}}}`, s.rv)
	s.history = append(s.history, change{rv: s.rv, path: path, ev: []byte(ev), bookmark: true})
	s.notify()
}
