// Package kube discovers peers from Kubernetes Node objects.
//
// A kubeapi.Reflector lists and watches Nodes (optionally filtered by a label
// selector, server-side). Every Node is decoded into its name and the
// addresses of the chosen type only, so memory stays small in clusters of
// thousands of nodes. On every change that matters the full peer list is
// published; when the API server goes away the cache is kept, nothing is
// published, and the last list stays in use while the reflector retries
// with backoff.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// Source is the name the Kubernetes peers are published under in a
// peers.Registry and in the gopmtud_peers{source} metric.
const Source = "kubernetes"

// DefaultDebounce is how long a burst of Node changes is collected before one
// list is published: short against the 1 s budget for a change to show, long
// enough that a relist of thousands of Nodes publishes once.
const DefaultDebounce = 100 * time.Millisecond

// Config configures the Node watch.
type Config struct {
	// NodeName is this node's Node name; that Node is never a peer.
	NodeName string
	// AddressType is the Node address type that is a peer's address
	// (default "InternalIP"). Every address of that type is used, so a
	// dual-stack node yields an IPv4 and an IPv6 peer.
	AddressType string
	// LabelSelector limits which Nodes are peers; it is applied by the API
	// server, so other Nodes never reach this process.
	LabelSelector string
	// Families limits peers to these address families (4, 6); empty: both.
	Families []int
	// Debounce collects bursts of changes; zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives progress and API errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the gopmtud_kubernetes_* metrics; nil: not exported.
	Registerer *expo.Registry
}

// Watcher publishes the peers found in Node objects.
type Watcher struct {
	client  kubeapi.Getter
	cfg     Config
	sel     string
	publish func([]peers.Peer)
	log     *slog.Logger

	synced      atomic.Bool
	connected   atomic.Bool
	lastSync    atomic.Int64 // unix nanoseconds of the last successful contact
	watchErrors atomic.Uint64
	lastErr     atomic.Pointer[errorAt] // most recent failure, for detail and dedup
	peerCount   atomic.Int64

	kick chan struct{}
	once sync.Once
}

type errorAt struct {
	err error
	at  time.Time
}

// New returns a Watcher; it starts nothing until Run. It fails on a bad
// label selector or address family, and if the metrics cannot be registered.
func New(client kubeapi.Getter, cfg Config, publish func([]peers.Peer)) (*Watcher, error) {
	if cfg.AddressType == "" {
		cfg.AddressType = "InternalIP"
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	for _, f := range cfg.Families {
		if f != 4 && f != 6 {
			return nil, fmt.Errorf("kubernetes: address family %d: want 4 or 6", f)
		}
	}
	sel, err := kubeapi.CheckSelector(cfg.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: node selector %q: %w", cfg.LabelSelector, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		client:  client,
		cfg:     cfg,
		sel:     sel,
		publish: publish,
		log:     log.With("source", Source),
		kick:    make(chan struct{}, 1),
	}
	if cfg.Registerer != nil {
		if err := w.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Run watches Nodes and publishes the peer list until ctx is done, then
// returns nil. The first list is published once the initial Node list is
// complete; after that, every change to the peer list is published within
// about Debounce. API errors never end Run: they are logged and counted while
// the last published list stays in use.
func Run(ctx context.Context, client kubeapi.Getter, cfg Config, publish func([]peers.Peer)) error {
	w, err := New(client, cfg, publish)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Run is the method form of the package-level Run; call it once.
func (w *Watcher) Run(ctx context.Context) error {
	started := false
	w.once.Do(func() { started = true })
	if !started {
		return errors.New("kubernetes: Watcher.Run called twice")
	}
	if w.cfg.NodeName == "" {
		w.log.Warn("no node name given (--nodename): this node's own Node object is a peer too")
	}

	nodes := &kubeapi.Reflector[*node]{
		Client: w.client, Path: kubeapi.NodesPath, Selector: w.sel, Decode: w.decode,
		// Node status heartbeats update every Node regularly; only a
		// change of the (already trimmed) addresses changes the peers.
		Same:      func(o, n *node) bool { return slices.Equal(o.addrs, n.addrs) },
		OnChange:  w.poke,
		OnContact: w.contact,
		OnError:   func(what string, err error) { w.failed(ctx, what, err) },
	}
	w.log.Info("watching nodes", "selector", w.sel, "address_type", w.cfg.AddressType, "node", w.cfg.NodeName)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { nodes.Run(ctx) })
	defer wg.Wait()

	for !nodes.HasSynced() {
		select {
		case <-ctx.Done():
			return nil // ctx done before the first list arrived
		case <-w.kick:
		}
	}
	w.synced.Store(true)
	last := w.update(nodes.List(), nil, true)
	w.log.Info("initial node list", "peers", len(last), "took", time.Since(start).Round(time.Millisecond))
	w.follow(ctx, nodes, last)
	return nil
}

// follow publishes the peers again after every burst of changes.
func (w *Watcher) follow(ctx context.Context, nodes *kubeapi.Reflector[*node], last []peers.Peer) {
	debounce := time.NewTimer(0)
	<-debounce.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			debounce.Reset(w.cfg.Debounce)
			select {
			case <-ctx.Done():
				debounce.Stop()
				return
			case <-debounce.C:
			}
			select { // changes that came during the wait are in this list
			case <-w.kick:
			default:
			}
			last = w.update(nodes.List(), last, false)
		}
	}
}

// update publishes the peers in store when they differ from last.
func (w *Watcher) update(nodes []*node, last []peers.Peer, force bool) []peers.Peer {
	list := w.peersFrom(nodes)
	if !force && slices.Equal(list, last) {
		return last
	}
	w.peerCount.Store(int64(len(list)))
	w.publish(slices.Clone(list))
	if !force {
		w.log.Debug("peers changed", "peers", len(list))
	}
	return list
}

func (w *Watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// peersFrom turns cached nodes into peers, one per node with its address of
// each family, sorted by name, so two lists compare equal exactly when they
// hold the same peers.
func (w *Watcher) peersFrom(nodes []*node) []peers.Peer {
	list := make([]peers.Peer, 0, len(nodes))
	for _, n := range nodes {
		if n.name == w.cfg.NodeName {
			continue
		}
		p := peers.Peer{Name: n.name}
		for _, a := range n.addrs {
			if a.Is4() && !p.V4.IsValid() {
				p.V4 = a
			} else if a.Is6() && !p.V6.IsValid() {
				p.V6 = a
			}
		}
		if p.V4.IsValid() || p.V6.IsValid() {
			list = append(list, p)
		}
	}
	slices.SortFunc(list, func(a, b peers.Peer) int { return strings.Compare(a.Name, b.Name) })
	return list
}

func (w *Watcher) wantFamily(a netip.Addr) bool {
	if len(w.cfg.Families) == 0 {
		return true
	}
	f := 6
	if a.Is4() {
		f = 4
	}
	return slices.Contains(w.cfg.Families, f)
}

// node is what the cache keeps of a Node: its name and the addresses that
// make peers, about 60 bytes where a decoded corev1.Node with its images and
// conditions takes kilobytes.
type node struct {
	name  string
	addrs []netip.Addr
}

// decode keeps only what peersFrom reads of an encoded Node.
func (w *Watcher) decode(into kubeapi.Into) (kubeapi.Meta, *node, error) {
	var n kubeapi.Node
	if err := into(&n); err != nil {
		return kubeapi.Meta{}, nil, fmt.Errorf("node: %w", err)
	}
	return n.Metadata, w.trim(&n), nil
}

// trim turns a decoded Node into what the cache keeps.
func (w *Watcher) trim(n *kubeapi.Node) *node {
	slim := &node{name: n.Metadata.Name}
	for _, a := range n.Status.Addresses {
		if a.Type != w.cfg.AddressType {
			continue
		}
		addr, err := netip.ParseAddr(a.Address)
		if err != nil || addr.Zone() != "" {
			continue
		}
		if addr = addr.Unmap(); w.wantFamily(addr) {
			slim.addrs = append(slim.addrs, addr)
		}
	}
	return slim
}

func (w *Watcher) contact() {
	w.lastSync.Store(time.Now().UnixNano())
	if !w.connected.Swap(true) && w.lastErr.Load() != nil {
		w.log.Info("kubernetes API reachable again")
	}
}

// failed counts and logs a failed list or watch. A watch that expired (the
// server compacted past our resource version) is routine and never comes here.
func (w *Watcher) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	w.watchErrors.Add(1)
	w.lastErr.Store(&errorAt{err: err, at: time.Now()})
	if w.connected.Swap(false) || !w.synced.Load() {
		// Logged at the transition; the reflector retries with backoff
		// (up to ~30 s), so later failures only show in the counter and detail.
		w.log.Warn("kubernetes API request failed; keeping the last known peers and retrying",
			"request", what, "peers", w.peerCount.Load(), "err", err)
	} else {
		w.log.Debug("kubernetes API request failed", "request", what, "err", err)
	}
}

// Synced reports whether the initial Node list has been received and published.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Ready is a readiness check: it fails until the initial Node list was
// published. Losing the API server later does not fail it, because relaying
// to the last known peers is the job; Detail says so.
func (w *Watcher) Ready() error {
	if !w.synced.Load() {
		return errors.New(w.Detail())
	}
	return nil
}

// Detail describes the watch state in one line for logs and health output.
func (w *Watcher) Detail() string {
	var b strings.Builder
	switch {
	case !w.synced.Load():
		b.WriteString("waiting for the initial node list")
	case w.connected.Load():
		fmt.Fprintf(&b, "synced, %d peers", w.peerCount.Load())
	default:
		fmt.Fprintf(&b, "API unreachable, relaying to the %d last known peers", w.peerCount.Load())
	}
	if t := w.lastSync.Load(); t != 0 {
		fmt.Fprintf(&b, ", last contact %s ago", time.Since(time.Unix(0, t)).Round(time.Second))
	}
	if e := w.lastErr.Load(); e != nil && !w.connected.Load() {
		fmt.Fprintf(&b, ", %d errors, last: %v", w.watchErrors.Load(), e.err)
	}
	return b.String()
}

// Connected reports whether the most recent request to the API server succeeded.
func (w *Watcher) Connected() bool { return w.connected.Load() }

// WatchErrors is the number of failed list and watch requests so far.
func (w *Watcher) WatchErrors() uint64 { return w.watchErrors.Load() }

// LastSync is the time of the last successful contact with the API server
// (a list, a watch started, or a watch event including bookmarks); zero if none.
func (w *Watcher) LastSync() time.Time {
	if t := w.lastSync.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}
