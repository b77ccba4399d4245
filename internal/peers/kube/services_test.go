package kube

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/kubeapi/fakeapi"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

func apiService(ns, name string, local bool, clusterIP, lbIP string, port int32) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, Annotations: map[string]string{"big": "x"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []corev1.ServicePort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP, NodePort: 30443}}, Selector: map[string]string{"app": name},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
	}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if lbIP != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbIP}}
	}
	return s
}

func apiSlice(ns, svc, name string, nodes ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		e := discoveryv1.Endpoint{Addresses: []string{netip.AddrFrom4([4]byte{10, 244, 0, byte(i + 1)}).String()}}
		if n != "" {
			e.NodeName = &n
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

func TestTransformServiceAndSlice(t *testing.T) {
	s := apiService("web", "front", true, "10.96.0.10", "192.0.2.10", 443)
	s.Spec.ExternalIPs = []string{"198.51.100.5", "::ffff:198.51.100.6", "bogus"}
	s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP}, corev1.ServicePort{Port: 9, Protocol: "XTP"})
	m, f, err := decodeService(into(t, s))
	if err != nil || m.Key() != "web/front" {
		t.Fatalf("decode: %+v %v", m, err)
	}
	var addrs []string
	for _, a := range f.Addrs {
		addrs = append(addrs, a.String())
	}
	if !f.Local || f.Namespace != "web" || f.Name != "front" ||
		!slices.Equal(addrs, []string{"10.96.0.10", "192.0.2.10", "198.51.100.5", "198.51.100.6"}) ||
		!slices.Equal(f.Ports, []fanout.Port{{Port: 443, Proto: fanout.TCP}, {Port: 53, Proto: fanout.UDP}}) {
		t.Errorf("service trimmed to %+v (addresses %v)", f, addrs)
	}
	m, sl, err := decodeSlice(into(t, apiSlice("web", "front", "front-abc", "n2", "n1", "n2", "")))
	if err != nil || m.Key() != "web/front-abc" || sl.Service != "front" || !slices.Equal(sl.Nodes, []string{"", "n1", "n2"}) {
		t.Errorf("slice trimmed to %+v (%+v, %v)", sl, m, err)
	}
	headless := apiService("web", "db", true, "None", "", 5432)
	if _, got, _ := decodeService(into(t, headless)); len(got.Addrs) != 0 {
		t.Errorf("headless service has addresses %v", got.Addrs)
	}
}

// TestServiceWatch: the published table follows Services and slices,
// endpoint churn that keeps the nodes publishes nothing new, and a move of
// an endpoint to another node shows within the debounce.
func TestServiceWatch(t *testing.T) {
	srv := fakeapi.New(t)
	srv.Put(kubeapi.ServicesPath, object(t, apiService("web", "front", true, "10.96.0.10", "192.0.2.10", 443)))
	srv.Put(kubeapi.ServicesPath, object(t, apiService("web", "cluster", false, "10.96.0.11", "192.0.2.11", 443)))
	srv.Put(kubeapi.EndpointSlicesPath, object(t, apiSlice("web", "front", "front-1", "n1", "n2")))
	srv.Put(kubeapi.EndpointSlicesPath, object(t, apiSlice("web", "cluster", "cluster-1", "n3")))
	c, err := kubeapi.New(kubeapi.Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tables []*fanout.Table
	reg := expo.NewRegistry()
	w, err := NewServiceWatcher(c,
		ServiceConfig{Debounce: 10 * time.Millisecond, Registerer: reg}, func(t *fanout.Table) {
			mu.Lock()
			tables = append(tables, t)
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	owners := func(ip string, port uint16) []string {
		mu.Lock()
		defer mu.Unlock()
		if len(tables) == 0 {
			return []string{"(no table)"}
		}
		ns, all := tables[len(tables)-1].Owners(netip.MustParseAddr(ip), port, fanout.TCP)
		if all {
			return []string{"(all)"}
		}
		return ns
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("the first table", func() bool { return slices.Equal(owners("192.0.2.10", 443), []string{"n1", "n2"}) })
	if !w.Synced() || !slices.Equal(owners("192.0.2.11", 443), []string{"(all)"}) || !slices.Equal(owners("10.96.0.10", 443), []string{"n1", "n2"}) {
		t.Fatalf("first table: local %v cluster %v", owners("192.0.2.10", 443), owners("192.0.2.11", 443))
	}

	// Readiness churn on the same nodes: no new table.
	mu.Lock()
	n := len(tables)
	mu.Unlock()
	churn := apiSlice("web", "front", "front-1", "n2", "n1")
	f := false
	churn.Endpoints[0].Conditions.Ready = &f
	srv.Put(kubeapi.EndpointSlicesPath, object(t, churn))
	// Nothing to wait for when nothing should happen: give the update five
	// debounce periods to (wrongly) publish.
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	if len(tables) != n {
		t.Errorf("a readiness change published %d tables, want none", len(tables)-n)
	}
	mu.Unlock()
	// An endpoint moves to n4 in a second slice; the first shrinks.
	srv.Put(kubeapi.EndpointSlicesPath, object(t, apiSlice("web", "front", "front-2", "n4")))
	wait("n4 to join", func() bool { return slices.Equal(owners("192.0.2.10", 443), []string{"n1", "n2", "n4"}) })
	mu.Lock()
	if len(tables) != n+1 {
		t.Errorf("%d tables published for a new slice, want 1", len(tables)-n)
	}
	mu.Unlock()
	srv.Delete(kubeapi.EndpointSlicesPath, "web/front-1")
	wait("front-1 to go", func() bool { return slices.Equal(owners("192.0.2.10", 443), []string{"n4"}) })
	// The Service turns Cluster: every peer.
	srv.Put(kubeapi.ServicesPath, object(t, apiService("web", "front", false, "10.96.0.10", "192.0.2.10", 443)))
	wait("policy Cluster", func() bool { return slices.Equal(owners("192.0.2.10", 443), []string{"(all)"}) })
	if d := w.Detail(); !strings.Contains(d, "targeted fan-out for 0 ") {
		t.Errorf("detail %q", d)
	}
}
