package kube

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"big": "x"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.0.0/24"},
		Status: corev1.NodeStatus{
			Addresses:  addrs,
			Images:     []corev1.ContainerImage{{Names: []string{"img"}, SizeBytes: 1}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// fakeNodeClient is client-go's fake Node client, which cannot stream an
// initial list (WatchList), so it says so as the fake clientset does.
type fakeNodeClient struct{ NodeClient }

func (fakeNodeClient) IsWatchListSemanticsUnSupported() bool { return true }

func fakeNodes(c *fake.Clientset) NodeClient { return fakeNodeClient{c.CoreV1().Nodes()} }

func internal(a string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a}
}

func TestTransformKeepsOnlyNameAndChosenAddresses(t *testing.T) {
	w, err := New(fakeNodes(fake.NewClientset()), Config{}, func([]peers.Peer) {})
	if err != nil {
		t.Fatal(err)
	}
	n := node("n1", internal("10.0.0.1"), corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.0.2.1"},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n1"}, internal("fd00::1"))
	n.ResourceVersion = "42"
	got, err := w.transform(n)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "42"}}
	want.Status.Addresses = []corev1.NodeAddress{internal("10.0.0.1"), internal("fd00::1")}
	g := got.(*corev1.Node)
	if g.Name != want.Name || g.ResourceVersion != "42" || !slices.Equal(g.Status.Addresses, want.Status.Addresses) ||
		g.Labels != nil || g.Annotations != nil || g.Status.Images != nil || g.Status.Conditions != nil || g.Spec.PodCIDR != "" {
		t.Fatalf("transform kept too much or too little: %+v", g)
	}
	// Idempotent: client-go may transform an object again.
	again, _ := w.transform(g)
	if a := again.(*corev1.Node); a.Name != "n1" || !slices.Equal(a.Status.Addresses, want.Status.Addresses) {
		t.Fatalf("second transform: %+v", a)
	}
	if x, _ := w.transform("tombstone"); x != "tombstone" {
		t.Fatalf("non-Node changed: %v", x)
	}
}

func TestPeersFrom(t *testing.T) {
	objs := []any{
		node("self", internal("10.0.0.1")),
		node("b", internal("10.0.0.3"), internal("fd00::3")),
		node("a", internal("10.0.0.2"), internal("not-an-ip"), internal("fe80::1%eth0")),
		node("mapped", internal("::ffff:10.0.0.9")),
	}
	for _, tc := range []struct {
		families []int
		want     []string
	}{
		{nil, []string{"10.0.0.2 a", "10.0.0.3 b", "10.0.0.9 mapped", "fd00::3 b"}},
		{[]int{4}, []string{"10.0.0.2 a", "10.0.0.3 b", "10.0.0.9 mapped"}},
		{[]int{6}, []string{"fd00::3 b"}},
	} {
		w, err := New(fakeNodes(fake.NewClientset()), Config{NodeName: "self", Families: tc.families}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range w.peersFrom(objs) {
			got = append(got, p.Addr.String()+" "+p.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("families %v: got %q, want %q", tc.families, got, tc.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(fakeNodes(fake.NewClientset()), Config{LabelSelector: "a in (b"}, nil); err == nil {
		t.Error("bad selector accepted")
	}
	if _, err := New(fakeNodes(fake.NewClientset()), Config{Families: []int{5}}, nil); err == nil {
		t.Error("family 5 accepted")
	}
}

// recorder keeps every published list and signals each one.
type recorder struct {
	mu    sync.Mutex
	lists [][]peers.Peer
	ch    chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 100)} }

func (r *recorder) publish(l []peers.Peer) {
	r.mu.Lock()
	r.lists = append(r.lists, l)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// waitFor waits until the latest published list holds exactly want ("addr name").
func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		r.mu.Lock()
		var got []string
		if n := len(r.lists); n > 0 {
			for _, p := range r.lists[n-1] {
				got = append(got, p.Addr.String()+" "+p.Name)
			}
		}
		r.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("published %q, want %q", got, want)
		}
	}
}

func TestRunFollowsNodesWithFakeClient(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	client := fake.NewClientset(node("self", internal("10.0.0.1")), node("n2", internal("10.0.0.2")))
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	w, err := New(fakeNodes(client), Config{NodeName: "self", Debounce: 10 * time.Millisecond, Registerer: reg}, rec.publish)
	if err != nil {
		t.Fatal(err)
	}
	if w.Ready() == nil {
		t.Error("ready before the first list")
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	rec.waitFor(t, "10.0.0.2 n2")
	if err := w.Ready(); err != nil {
		t.Errorf("not ready after the first list: %v", err)
	}
	if metricValue(t, reg, "gopmtud_kubernetes_synced") != 1 {
		t.Error("synced metric not 1")
	}
	nodes := client.CoreV1().Nodes()
	if _, err := nodes.Create(ctx, node("n3", internal("fd00::3")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "10.0.0.2 n2", "fd00::3 n3")

	n2 := node("n2", internal("10.0.0.22"))
	if _, err := nodes.Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "10.0.0.22 n2", "fd00::3 n3")

	// An update that leaves the addresses alone publishes nothing.
	rec.mu.Lock()
	before := len(rec.lists)
	rec.mu.Unlock()
	n2.Labels["heartbeat"] = "1"
	if _, err := nodes.Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "10.0.0.22 n2")
	rec.mu.Lock()
	if n := len(rec.lists) - before; n != 1 {
		t.Errorf("%d lists published for one relevant change", n)
	}
	rec.mu.Unlock()
}

// metricValue reads one unlabelled gauge or counter from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}
