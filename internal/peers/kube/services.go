package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// ServiceConfig configures the Service and EndpointSlice watch.
type ServiceConfig struct {
	// Debounce collects bursts of changes (endpoint churn); zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives progress and API errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the gopmtud_fanout_* metrics; nil: not exported.
	Registerer *expo.Registry
}

// ServiceWatcher publishes a fanout.Table built from Services and
// EndpointSlices: which nodes can own the flows of each Service with
// externalTrafficPolicy Local. Like the Node watch, it caches trimmed
// objects only, and when the API server goes away the last table stays in
// use. Until the first table is published the relay sends to every peer.
type ServiceWatcher struct {
	client  kubeapi.Getter
	cfg     ServiceConfig
	publish func(*fanout.Table)
	log     *slog.Logger

	synced  atomic.Bool
	errors  atomic.Uint64
	keys    atomic.Int64
	builtAt atomic.Int64  // unix nanoseconds of the last table
	last    *fanout.Table // the last published (build's goroutine only)
	kick    chan struct{}
	once    sync.Once
}

// NewServiceWatcher returns a watcher; it starts nothing until Run.
func NewServiceWatcher(client kubeapi.Getter, cfg ServiceConfig, publish func(*fanout.Table)) (*ServiceWatcher, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &ServiceWatcher{client: client, cfg: cfg, publish: publish,
		log: log.With("source", "services"), kick: make(chan struct{}, 1)}
	if cfg.Registerer != nil {
		if err := w.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Run watches until ctx is done, then returns nil; call it once.
func (w *ServiceWatcher) Run(ctx context.Context) error {
	started := false
	w.once.Do(func() { started = true })
	if !started {
		return errors.New("kubernetes: ServiceWatcher.Run called twice")
	}
	fail := func(what string, err error) { w.failed(ctx, what, err) }
	svcs := &kubeapi.Reflector[fanout.Service]{Client: w.client, Path: kubeapi.ServicesPath,
		Decode: decodeService, Same: sameService, OnChange: w.poke, OnError: fail}
	// Only slices that belong to a Service are of use: the API server filters.
	sls := &kubeapi.Reflector[fanout.Slice]{Client: w.client, Path: kubeapi.EndpointSlicesPath,
		Selector: kubeapi.LabelServiceName, Decode: decodeSlice, Same: sameSlice, OnChange: w.poke, OnError: fail}
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { svcs.Run(ctx) })
	wg.Go(func() { sls.Run(ctx) })
	for !svcs.HasSynced() || !sls.HasSynced() {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
	}
	select { // the initial adds are in the first build
	case <-w.kick:
	default:
	}
	w.build(svcs.List(), sls.List())
	w.synced.Store(true)
	w.log.Info("initial services and endpoint slices", "services", svcs.Len(),
		"endpoint_slices", sls.Len(), "targeted_keys", w.keys.Load(), "took", time.Since(start).Round(time.Millisecond))
	w.follow(ctx, svcs, sls)
	return nil
}

// follow builds the table again after every burst of changes.
func (w *ServiceWatcher) follow(ctx context.Context, svcs *kubeapi.Reflector[fanout.Service], sls *kubeapi.Reflector[fanout.Slice]) {
	debounce := time.NewTimer(0)
	<-debounce.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		debounce.Reset(w.cfg.Debounce)
		select {
		case <-ctx.Done():
			debounce.Stop()
			return
		case <-debounce.C:
		}
		select { // changes that came during the wait are in this build
		case <-w.kick:
		default:
		}
		w.build(svcs.List(), sls.List())
	}
}

func (w *ServiceWatcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// build publishes the table of what the caches hold, unless it relays
// exactly as the last one: a change notice can come after the change was
// already built (the second initial list's, for one), and the relay need
// not swap tables for nothing.
func (w *ServiceWatcher) build(svcs []fanout.Service, all []fanout.Slice) {
	sl := slices.DeleteFunc(all, func(s fanout.Slice) bool { return s.Service == "" })
	t := fanout.Build(svcs, sl)
	w.keys.Store(int64(t.Len()))
	w.builtAt.Store(time.Now().UnixNano())
	if w.last != nil && t.Equal(w.last) {
		return
	}
	w.last = t
	w.publish(t)
}

// Most updates (endpoint readiness, status) leave the cached facts alone.
func sameService(o, n fanout.Service) bool {
	return o.Local == n.Local && slices.Equal(o.Addrs, n.Addrs) && slices.Equal(o.Ports, n.Ports)
}

func sameSlice(o, n fanout.Slice) bool {
	return o.Service == n.Service && slices.Equal(o.Nodes, n.Nodes)
}

func decodeService(into kubeapi.Into) (kubeapi.Meta, fanout.Service, error) {
	var s kubeapi.Service
	if err := into(&s); err != nil {
		return kubeapi.Meta{}, fanout.Service{}, fmt.Errorf("service: %w", err)
	}
	return s.Metadata, trimService(&s), nil
}

func decodeSlice(into kubeapi.Into) (kubeapi.Meta, fanout.Slice, error) {
	var s kubeapi.EndpointSlice
	if err := into(&s); err != nil {
		return kubeapi.Meta{}, fanout.Slice{}, fmt.Errorf("endpoint slice: %w", err)
	}
	return s.Metadata.Meta, trimSlice(&s), nil
}

// trimService keeps the Service's policy, addresses and ports.
func trimService(s *kubeapi.Service) fanout.Service {
	out := fanout.Service{Namespace: s.Metadata.Namespace, Name: s.Metadata.Name,
		Local: s.Spec.ExternalTrafficPolicy == "Local"}
	addrs := append(slices.Clone(s.Spec.ClusterIPs), s.Spec.ExternalIPs...)
	if len(s.Spec.ClusterIPs) == 0 {
		addrs = append(addrs, s.Spec.ClusterIP)
	}
	for _, in := range s.Status.LoadBalancer.Ingress {
		addrs = append(addrs, in.IP)
	}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Zone() == "" {
			out.Addrs = append(out.Addrs, ip.Unmap())
		}
	}
	slices.SortFunc(out.Addrs, netip.Addr.Compare)
	out.Addrs = slices.Compact(out.Addrs)
	for _, p := range s.Spec.Ports {
		if proto, ok := protoNumber(p.Protocol); ok && p.Port > 0 && p.Port < 1<<16 {
			out.Ports = append(out.Ports, fanout.Port{Port: uint16(p.Port), Proto: proto})
		}
	}
	return out
}

func protoNumber(p string) (uint8, bool) {
	switch p {
	case "TCP", "":
		return fanout.TCP, true
	case "UDP":
		return fanout.UDP, true
	case "SCTP":
		return fanout.SCTP, true
	}
	return 0, false
}

// trimSlice keeps the slice's Service and its endpoints' nodes, sorted
// and unique ("" for an endpoint whose node is not given).
func trimSlice(s *kubeapi.EndpointSlice) fanout.Slice {
	out := fanout.Slice{Namespace: s.Metadata.Namespace, Service: s.Metadata.Labels[kubeapi.LabelServiceName]}
	for _, e := range s.Endpoints {
		n := ""
		if e.NodeName != nil {
			n = *e.NodeName
		}
		out.Nodes = append(out.Nodes, n)
	}
	slices.Sort(out.Nodes)
	out.Nodes = slices.Clip(slices.Compact(out.Nodes))
	return out
}

func (w *ServiceWatcher) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	// The reflector retries with backoff; log the 1st, 2nd, 4th, 8th ...
	// failure so a missing RBAC rule shows without flooding the log.
	if n := w.errors.Add(1); n&(n-1) == 0 {
		w.log.Warn("kubernetes API request failed; relaying by the last known services, or to every peer",
			"request", what, "errors", n, "err", err)
	}
}

// Errors is the number of failed list and watch requests so far.
func (w *ServiceWatcher) Errors() uint64 { return w.errors.Load() }

// Synced reports whether the first table was published.
func (w *ServiceWatcher) Synced() bool { return w.synced.Load() }

// Detail describes the watch in one line for the readiness output.
func (w *ServiceWatcher) Detail() string {
	if !w.synced.Load() {
		return "waiting for services and endpoint slices: relaying to every peer meanwhile"
	}
	return fmt.Sprintf("targeted fan-out for %d service address/port pairs, last built %s ago, %d API errors",
		w.keys.Load(), time.Since(time.Unix(0, w.builtAt.Load())).Round(time.Second), w.errors.Load())
}

func (w *ServiceWatcher) register(reg *expo.Registry) error {
	for _, c := range []expo.Collector{
		expo.NewGaugeFunc(expo.Opts{Name: "gopmtud_fanout_targeted_keys",
			Help: "Service address/port/protocol keys relayed only to the nodes with endpoints (externalTrafficPolicy Local)."},
			func() float64 { return float64(w.keys.Load()) }),
		expo.NewGaugeFunc(expo.Opts{Name: "gopmtud_fanout_synced",
			Help: "1 once Services and EndpointSlices were listed and the targeted fan-out is in use."},
			func() float64 { return b2f(w.synced.Load()) }),
		expo.NewCounterFunc(expo.Opts{Name: "gopmtud_fanout_watch_errors_total",
			Help: "Failed Service and EndpointSlice list and watch requests; the last table stays in use meanwhile."},
			func() float64 { return float64(w.errors.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	return nil
}
