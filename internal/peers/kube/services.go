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

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/go-pmtud/go-pmtud/internal/fanout"
)

// ServiceConfig configures the Service and EndpointSlice watch.
type ServiceConfig struct {
	// Debounce collects bursts of changes (endpoint churn); zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives progress and API errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the gopmtud_fanout_* metrics; nil: not exported.
	Registerer prometheus.Registerer
}

// ServiceWatcher publishes a fanout.Table built from Services and
// EndpointSlices: which nodes can own the flows of each Service with
// externalTrafficPolicy Local. Like the Node watch, it caches trimmed
// objects only, and when the API server goes away the last table stays in
// use. Until the first table is published the relay sends to every peer.
type ServiceWatcher struct {
	services ServiceClient
	slices   SliceClient
	cfg      ServiceConfig
	publish  func(*fanout.Table)
	log      *slog.Logger

	synced  atomic.Bool
	errors  atomic.Uint64
	keys    atomic.Int64
	builtAt atomic.Int64 // unix nanoseconds of the last table
	kick    chan struct{}
	once    sync.Once
}

// NewServiceWatcher returns a watcher; it starts nothing until Run.
func NewServiceWatcher(services ServiceClient, slcs SliceClient, cfg ServiceConfig, publish func(*fanout.Table)) (*ServiceWatcher, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &ServiceWatcher{services: services, slices: slcs, cfg: cfg, publish: publish,
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
	svcInf, err := w.informer(w.serviceLW(), &corev1.Service{}, "services", transformService)
	if err != nil {
		return err
	}
	// Only slices that belong to a Service are of use: the API server filters.
	sliceInf, err := w.informer(w.sliceLW(discoveryv1.LabelServiceName), &discoveryv1.EndpointSlice{}, "endpointslices", transformSlice)
	if err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { svcInf.RunWithContext(ctx) })
	wg.Go(func() { sliceInf.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.HasSynced, sliceInf.HasSynced) {
		return nil
	}
	select { // the initial adds are in the first build
	case <-w.kick:
	default:
	}
	w.build(svcInf.GetStore(), sliceInf.GetStore())
	w.synced.Store(true)
	w.log.Info("initial services and endpoint slices", "services", len(svcInf.GetStore().ListKeys()),
		"endpoint_slices", len(sliceInf.GetStore().ListKeys()), "targeted_keys", w.keys.Load(), "took", time.Since(start).Round(time.Millisecond))

	debounce := time.NewTimer(0)
	<-debounce.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		debounce.Reset(w.cfg.Debounce)
		select {
		case <-ctx.Done():
			debounce.Stop()
			return nil
		case <-debounce.C:
		}
		select { // changes that came during the wait are in this build
		case <-w.kick:
		default:
		}
		w.build(svcInf.GetStore(), sliceInf.GetStore())
	}
}

func (w *ServiceWatcher) informer(lw cache.ListerWatcher, obj runtime.Object, what string, tf cache.TransformFunc) (cache.SharedIndexInformer, error) {
	inf := cache.NewSharedIndexInformerWithOptions(lw, obj, cache.SharedIndexInformerOptions{ObjectDescription: what})
	if err := inf.SetTransform(tf); err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { w.poke() },
		// Most updates (endpoint readiness, status) leave the trimmed facts alone.
		UpdateFunc: func(o, n any) {
			if !sameFacts(o, n) {
				w.poke()
			}
		},
		DeleteFunc: func(any) { w.poke() },
	}); err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return inf, nil
}

func (w *ServiceWatcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// build publishes the table of what the stores hold.
func (w *ServiceWatcher) build(svcStore, sliceStore cache.Store) {
	objs := svcStore.List()
	svcs := make([]fanout.Service, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*service); ok {
			svcs = append(svcs, s.f)
		}
	}
	objs = sliceStore.List()
	sl := make([]fanout.Slice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*slice); ok && s.f.Service != "" {
			sl = append(sl, s.f)
		}
	}
	t := fanout.Build(svcs, sl)
	w.keys.Store(int64(t.Len()))
	w.builtAt.Store(time.Now().UnixNano())
	w.publish(t)
}

// service is what the informer caches of a Service.
type service struct {
	rv string
	f  fanout.Service
}

func (s *service) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: s.f.Namespace, Name: s.f.Name, ResourceVersion: s.rv}
}

// slice is what the informer caches of an EndpointSlice.
type slice struct {
	name, rv string
	f        fanout.Slice
}

func (s *slice) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: s.f.Namespace, Name: s.name, ResourceVersion: s.rv}
}

func sameFacts(o, n any) bool {
	switch o := o.(type) {
	case *service:
		n, ok := n.(*service)
		return ok && o.f.Local == n.f.Local && slices.Equal(o.f.Addrs, n.f.Addrs) && slices.Equal(o.f.Ports, n.f.Ports)
	case *slice:
		n, ok := n.(*slice)
		return ok && o.f.Service == n.f.Service && slices.Equal(o.f.Nodes, n.f.Nodes)
	}
	return false
}

// transformService keeps the Service's policy, addresses and ports.
func transformService(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &service{rv: s.ResourceVersion, f: fanout.Service{Namespace: s.Namespace, Name: s.Name,
		Local: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}}
	addrs := append(slices.Clone(s.Spec.ClusterIPs), s.Spec.ExternalIPs...)
	if len(s.Spec.ClusterIPs) == 0 {
		addrs = append(addrs, s.Spec.ClusterIP)
	}
	for _, in := range s.Status.LoadBalancer.Ingress {
		addrs = append(addrs, in.IP)
	}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Zone() == "" {
			out.f.Addrs = append(out.f.Addrs, ip.Unmap())
		}
	}
	slices.SortFunc(out.f.Addrs, netip.Addr.Compare)
	out.f.Addrs = slices.Compact(out.f.Addrs)
	for _, p := range s.Spec.Ports {
		if proto, ok := protoNumber(p.Protocol); ok && p.Port > 0 && p.Port < 1<<16 {
			out.f.Ports = append(out.f.Ports, fanout.Port{Port: uint16(p.Port), Proto: proto})
		}
	}
	return out, nil
}

func protoNumber(p corev1.Protocol) (uint8, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return fanout.TCP, true
	case corev1.ProtocolUDP:
		return fanout.UDP, true
	case corev1.ProtocolSCTP:
		return fanout.SCTP, true
	}
	return 0, false
}

// transformSlice keeps the slice's Service and its endpoints' nodes, sorted
// and unique ("" for an endpoint whose node is not given).
func transformSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &slice{name: s.Name, rv: s.ResourceVersion, f: fanout.Slice{Namespace: s.Namespace, Service: s.Labels[discoveryv1.LabelServiceName]}}
	for _, e := range s.Endpoints {
		n := ""
		if e.NodeName != nil {
			n = *e.NodeName
		}
		out.f.Nodes = append(out.f.Nodes, n)
	}
	slices.Sort(out.f.Nodes)
	out.f.Nodes = slices.Clip(slices.Compact(out.f.Nodes))
	return out, nil
}

func (w *ServiceWatcher) serviceLW() cache.ListerWatcher {
	return w.lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return w.services.List(ctx, o)
	},
		w.services.Watch, "", w.services)
}

func (w *ServiceWatcher) sliceLW(selector string) cache.ListerWatcher {
	return w.lw(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return w.slices.List(ctx, o) },
		w.slices.Watch, selector, w.slices)
}

// lw wraps a list and a watch, counting failed requests (the reflector
// retries them with backoff; the last table stays in use meanwhile).
func (w *ServiceWatcher) lw(list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error), selector string, client any) cache.ListerWatcher {
	l := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = selector
			obj, err := list(ctx, opts)
			w.failed(ctx, "list", err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = selector
			wi, err := watchFn(ctx, opts)
			w.failed(ctx, "watch", err)
			return wi, err
		},
	}
	return cache.ToListWatcherWithWatchListSemantics(l, client)
}

func (w *ServiceWatcher) failed(ctx context.Context, what string, err error) {
	if err == nil || ctx.Err() != nil {
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

func (w *ServiceWatcher) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gopmtud", Subsystem: "fanout", Name: "targeted_keys",
			Help: "Service address/port/protocol keys relayed only to the nodes with endpoints (externalTrafficPolicy Local)."},
			func() float64 { return float64(w.keys.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gopmtud", Subsystem: "fanout", Name: "synced",
			Help: "1 once Services and EndpointSlices were listed and the targeted fan-out is in use."},
			func() float64 { return b2f(w.synced.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gopmtud", Subsystem: "fanout", Name: "watch_errors_total",
			Help: "Failed Service and EndpointSlice list and watch requests; the last table stays in use meanwhile."},
			func() float64 { return float64(w.errors.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	return nil
}
