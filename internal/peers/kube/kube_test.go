package kube

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/kubeapi/fakeapi"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/peers"
)

func apiNode(name string, addrs ...corev1.NodeAddress) *corev1.Node {
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

// encode is obj as the API server sends it.
func encode(t testing.TB, obj any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// into decodes obj as the API server would send it.
func into(t testing.TB, obj any) kubeapi.Into {
	b := encode(t, obj)
	return func(v any) error { return json.Unmarshal(b, v) }
}

// object is obj as a map, for the fake API server.
func object(t testing.TB, obj any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(encode(t, obj), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// trimmed is what the Node cache keeps of n.
func trimmed(t testing.TB, w *Watcher, n *corev1.Node) *node {
	t.Helper()
	m, slim, err := w.decode(into(t, n))
	if err != nil || m.Name != n.Name || m.ResourceVersion != n.ResourceVersion {
		t.Fatalf("decode %s: %+v %v", n.Name, m, err)
	}
	return slim
}

func internal(a string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a}
}

func TestTransformKeepsOnlyNameAndPeerAddresses(t *testing.T) {
	n := apiNode("n1", internal("10.0.0.1"), corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "192.0.2.1"},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n1"}, internal("fd00::1"),
		internal("not-an-ip"), internal("fe80::1%eth0"), internal("::ffff:10.0.0.9"))
	n.ResourceVersion = "42"
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{}, []string{"10.0.0.1", "fd00::1", "10.0.0.9"}},
		{Config{Families: []int{4}}, []string{"10.0.0.1", "10.0.0.9"}},
		{Config{Families: []int{6}}, []string{"fd00::1"}},
		{Config{AddressType: "ExternalIP"}, []string{"192.0.2.1"}},
	} {
		w, err := New(nil, tc.cfg, func([]peers.Peer) {})
		if err != nil {
			t.Fatal(err)
		}
		g := trimmed(t, w, n)
		var addrs []string
		for _, a := range g.addrs {
			addrs = append(addrs, a.String())
		}
		if g.name != "n1" || !slices.Equal(addrs, tc.want) {
			t.Errorf("%+v: trimmed to %+v, want addresses %q", tc.cfg, g, tc.want)
		}
	}
}

func TestPeersFrom(t *testing.T) {
	w, err := New(nil, Config{NodeName: "self"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*node
	for _, n := range []*corev1.Node{
		apiNode("self", internal("10.0.0.1")),
		apiNode("b", internal("10.0.0.3"), internal("fd00::3")),
		apiNode("a", internal("10.0.0.2")),
		apiNode("none"),
	} {
		objs = append(objs, trimmed(t, w, n))
	}
	var got []string
	for _, p := range w.peersFrom(objs) {
		got = append(got, p.V4.String()+" "+p.V6.String()+" "+p.Name)
	}
	if want := []string{"10.0.0.2 invalid IP a", "10.0.0.3 fd00::3 b"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(nil, Config{LabelSelector: "a in (b"}, nil); err == nil {
		t.Error("bad selector accepted")
	}
	if _, err := New(nil, Config{Families: []int{5}}, nil); err == nil {
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
				for _, a := range []netip.Addr{p.V4, p.V6} {
					if a.IsValid() {
						got = append(got, a.String()+" "+p.Name)
					}
				}
			}
			slices.Sort(got)
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
	srv := fakeapi.New(t)
	srv.Put(kubeapi.NodesPath, object(t, apiNode("self", internal("10.0.0.1"))))
	srv.Put(kubeapi.NodesPath, object(t, apiNode("n2", internal("10.0.0.2"))))
	client, err := kubeapi.New(kubeapi.Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	reg := expo.NewRegistry()
	w, err := New(client, Config{NodeName: "self", Debounce: 10 * time.Millisecond, Registerer: reg}, rec.publish)
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
	srv.Put(kubeapi.NodesPath, object(t, apiNode("n3", internal("fd00::3"))))
	rec.waitFor(t, "10.0.0.2 n2", "fd00::3 n3")

	n2 := apiNode("n2", internal("10.0.0.22"))
	srv.Put(kubeapi.NodesPath, object(t, n2))
	rec.waitFor(t, "10.0.0.22 n2", "fd00::3 n3")

	// An update that leaves the addresses alone publishes nothing.
	rec.mu.Lock()
	before := len(rec.lists)
	rec.mu.Unlock()
	n2.Labels["heartbeat"] = "1"
	srv.Put(kubeapi.NodesPath, object(t, n2))
	srv.Delete(kubeapi.NodesPath, "/n3")
	rec.waitFor(t, "10.0.0.22 n2")
	rec.mu.Lock()
	if n := len(rec.lists) - before; n != 1 {
		t.Errorf("%d lists published for one relevant change", n)
	}
	rec.mu.Unlock()
}

// metricValue reads one unlabelled gauge or counter from reg.
func metricValue(t *testing.T, reg *expo.Registry, name string) float64 {
	t.Helper()
	v, ok := reg.Value(name)
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
	return v
}

// TestNotReadyAndCordonedNodesStayPeers: a NotReady node (kubelet down, its
// data plane possibly still forwarding and owning flows) and a cordoned one
// can still own connections, so they stay peers; whether a frame reaches
// them is the transport's business, and a peer nobody answers for is a
// readiness detail, not a failure (internal/daemon).
func TestNotReadyAndCordonedNodesStayPeers(t *testing.T) {
	w, err := New(nil, Config{NodeName: "self"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	notReady := apiNode("down", internal("10.0.0.5"))
	notReady.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}
	cordoned := apiNode("cordoned", internal("10.0.0.6"))
	cordoned.Spec.Unschedulable = true
	var objs []*node
	for _, n := range []*corev1.Node{notReady, cordoned} {
		objs = append(objs, trimmed(t, w, n))
	}
	if got := w.peersFrom(objs); len(got) != 2 {
		t.Fatalf("peers = %+v, want the NotReady and the cordoned node", got)
	}
}
