package kube_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

func ensureNamespace(t testing.TB, c kubernetes.Interface, ns string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// createService creates a LoadBalancer Service (clusterIP allocated by the
// API server) and, if lbIP is set, gives it that ingress IP through the
// status subresource, as a load-balancer controller does.
func createService(t testing.TB, c kubernetes.Interface, ns, name string, local bool, lbIP string, port int32) *corev1.Service {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports:                 []corev1.ServicePort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster}}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	s, err := c.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
	if lbIP != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbIP}}
		if s, err = c.CoreV1().Services(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("service %s/%s status: %v", ns, name, err)
		}
	}
	return s
}

// endpointSlice is an EndpointSlice of Service svc with one ready endpoint
// per node, as the EndpointSlice controller writes them.
func endpointSlice(ns, svc, name string, nodes ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(int32(8443)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for i, n := range nodes {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
			NodeName:   ptr(n),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", svc, i)},
		})
	}
	return s
}

func createSlice(t testing.TB, c kubernetes.Interface, s *discoveryv1.EndpointSlice) {
	t.Helper()
	if _, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create endpointslice %s/%s: %v", s.Namespace, s.Name, err)
	}
}

// tableWatch runs the daemon's Service watch until the test ends and keeps
// the last table it published.
type tableWatch struct {
	w  *kube.ServiceWatcher
	mu sync.Mutex
	t  *fanout.Table
	n  int
}

func startServiceWatch(t *testing.T, cfg *rest.Config) *tableWatch {
	t.Helper()
	tw := &tableWatch{}
	var err error
	tw.w, err = kube.NewServiceWatcher(nodeClient(t, cfg), kube.ServiceConfig{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))},
		func(t *fanout.Table) { tw.mu.Lock(); tw.t, tw.n = t, tw.n+1; tw.mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service watch: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the service watch did not return after cancel")
		}
	})
	return tw
}

// owners is the last table's answer; "*" stands for every peer.
func (tw *tableWatch) owners(ip string, port uint16) []string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.t == nil {
		return []string{"(no table)"}
	}
	ns, all := tw.t.Owners(netip.MustParseAddr(ip), port, fanout.TCP)
	if all {
		return []string{"*"}
	}
	return ns
}

// waitOwners waits until ip:port maps to want and returns how long it took.
func (tw *tableWatch) waitOwners(t *testing.T, ip string, port uint16, budget time.Duration, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	for !slices.Equal(tw.owners(ip, port), want) {
		if time.Since(start) > budget {
			t.Fatalf("after %v %s:%d maps to %v, want %v", budget, ip, port, tw.owners(ip, port), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// runServiceWatch runs the watch with cfg's credentials until its first
// table and returns the failed requests it counted.
func runServiceWatch(t *testing.T, cfg *rest.Config) uint64 {
	t.Helper()
	tw := startServiceWatch(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for !tw.w.Synced() {
		if time.Now().After(deadline) {
			t.Fatalf("service watch not synced after 10 s: %s", tw.w.Detail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tw.w.Errors()
}

// TestServiceWatchFollowsEndpoints: against the real API server, the
// table maps a Local Service's LoadBalancer IP and clusterIP to its
// endpoints' nodes and a Cluster Service's to every peer, and follows an
// endpoint moving to another node, a new slice, and a change of policy,
// each within the change budget.
func TestServiceWatchFollowsEndpoints(t *testing.T) {
	cp := startControlPlane(t)
	c := cp.Client()
	ensureNamespace(t, c, "web")
	local := createService(t, c, "web", "front", true, "192.0.2.10", 443)
	createService(t, c, "web", "cluster", false, "192.0.2.11", 443)
	createSlice(t, c, endpointSlice("web", "front", "front-a", "node-1", "node-2"))
	createSlice(t, c, endpointSlice("web", "cluster", "cluster-a", "node-3"))

	tw := startServiceWatch(t, cp.Config())
	tw.waitOwners(t, "192.0.2.10", 443, 10*time.Second, "node-1", "node-2")
	tw.waitOwners(t, local.Spec.ClusterIP, 443, changeBudget, "node-1", "node-2")
	tw.waitOwners(t, "192.0.2.11", 443, changeBudget, "*")
	tw.waitOwners(t, "192.0.2.10", 80, changeBudget, "*")

	ctx := context.Background()
	var took []time.Duration
	// An endpoint moves from node-2 to node-9.
	if _, err := c.DiscoveryV1().EndpointSlices("web").Update(ctx, endpointSlice("web", "front", "front-a", "node-1", "node-9"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = append(took, tw.waitOwners(t, "192.0.2.10", 443, changeBudget, "node-1", "node-9"))
	// A second slice (the Service scaled up).
	createSlice(t, c, endpointSlice("web", "front", "front-b", "node-4"))
	took = append(took, tw.waitOwners(t, "192.0.2.10", 443, changeBudget, "node-1", "node-4", "node-9"))
	// The Service turns to Cluster: every peer.
	s, err := c.CoreV1().Services("web").Get(ctx, "front", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if _, err := c.CoreV1().Services("web").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = append(took, tw.waitOwners(t, "192.0.2.10", 443, changeBudget, "*"))
	t.Logf("changes seen after %v", took)
	if n := tw.w.Errors(); n != 0 {
		t.Errorf("%d API errors", n)
	}
}
