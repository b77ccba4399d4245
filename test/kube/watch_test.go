package kube_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

// changeBudget is how soon a Node change must show in the peer set.
const changeBudget = time.Second

// createNode creates a Node and sets its addresses through the status
// subresource, as a kubelet does.
func createNode(t testing.TB, c kubernetes.Interface, name string, lbls map[string]string, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	if _, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	setAddresses(t, c, name, addrs...)
}

func setAddresses(t testing.TB, c kubernetes.Interface, name string, addrs ...string) {
	t.Helper()
	type addr struct {
		Type    string `json:"type"`
		Address string `json:"address"`
	}
	list := []addr{{"Hostname", name}, {"ExternalIP", "192.0.2.99"}} // never peers by default
	for _, a := range addrs {
		list = append(list, addr{"InternalIP", a})
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"addresses": list}})
	if _, err := c.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("patch addresses of %s: %v", name, err)
	}
}

func setLabels(t testing.TB, c kubernetes.Interface, name string, lbls map[string]any) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": lbls}})
	if _, err := c.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("relabel %s: %v", name, err)
	}
}

// nodeClient is the daemon's own API client (internal/kubeapi) with cfg's
// server, CA and token.
func nodeClient(t *testing.T, cfg *rest.Config) *kubeapi.Client {
	t.Helper()
	c, err := kubeapi.New(kubeapi.Config{Server: cfg.Host, CAData: cfg.CAData, Token: cfg.BearerToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return c
}

// watchPeers runs kube.Run into a peers.Registry, as the daemon does, until
// the test ends.
func watchPeers(t *testing.T, c kubeapi.Getter, cfg kube.Config) (*peers.Registry, *kube.Watcher, *expo.Registry) {
	t.Helper()
	reg := peers.NewRegistry()
	metrics := expo.NewRegistry()
	cfg.Registerer = metrics
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	w, err := kube.New(c, cfg, func(l []peers.Peer) { reg.Update(kube.Source, l) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kube.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("kube.Run did not return after cancel")
		}
	})
	return reg, w, metrics
}

func peerStrings(s *peers.Set) []string {
	var out []string
	for _, p := range s.All() {
		for _, a := range []netip.Addr{p.V4, p.V6} {
			if a.IsValid() {
				out = append(out, a.String()+" "+p.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// waitPeers waits until reg holds exactly want and returns how long it took.
func waitPeers(t *testing.T, reg *peers.Registry, budget time.Duration, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	for {
		got := peerStrings(reg.Snapshot())
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		select {
		case <-reg.Changed():
		case <-time.After(10 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("after %v the peers are %q, want %q", budget, got, want)
		}
	}
}

// TestNodeWatchFollowsNodes: create, relabel, re-address and delete Nodes;
// the peer set follows each change within a second. Only Nodes matching the
// label selector are peers, and the own Node never is.
func TestNodeWatchFollowsNodes(t *testing.T) {
	cp := startControlPlane(t)
	c := cp.Client()
	relay := map[string]string{"go-pmtud/relay": "yes"}
	createNode(t, c, "self", relay, "10.0.0.1")
	createNode(t, c, "n1", relay, "10.0.0.11", "fd00::11") // dual-stack
	createNode(t, c, "n2", relay, "10.0.0.12")
	createNode(t, c, "n3", nil, "10.0.0.13") // not selected

	start := time.Now()
	reg, w, _ := watchPeers(t, nodeClient(t, cp.Config()), kube.Config{NodeName: "self", LabelSelector: "go-pmtud/relay=yes"})
	waitPeers(t, reg, 10*time.Second, "10.0.0.11 n1", "10.0.0.12 n2", "fd00::11 n1")
	t.Logf("initial list: %v", time.Since(start).Round(time.Millisecond))
	if !w.Synced() || w.Ready() != nil {
		t.Errorf("synced=%v ready=%v after the initial list", w.Synced(), w.Ready())
	}

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"create", func() { createNode(t, c, "n4", relay, "10.0.0.14") },
			[]string{"10.0.0.11 n1", "10.0.0.12 n2", "10.0.0.14 n4", "fd00::11 n1"}},
		{"relabel in", func() { setLabels(t, c, "n3", map[string]any{"go-pmtud/relay": "yes"}) },
			[]string{"10.0.0.11 n1", "10.0.0.12 n2", "10.0.0.13 n3", "10.0.0.14 n4", "fd00::11 n1"}},
		{"relabel out", func() { setLabels(t, c, "n1", map[string]any{"go-pmtud/relay": nil}) },
			[]string{"10.0.0.12 n2", "10.0.0.13 n3", "10.0.0.14 n4"}},
		{"patch addresses", func() { setAddresses(t, c, "n2", "10.0.1.12", "fd00::12") },
			[]string{"10.0.0.13 n3", "10.0.0.14 n4", "10.0.1.12 n2", "fd00::12 n2"}},
		{"delete", func() {
			if err := c.CoreV1().Nodes().Delete(context.Background(), "n4", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"10.0.0.13 n3", "10.0.1.12 n2", "fd00::12 n2"}},
		{"own node changes nothing", func() {
			setAddresses(t, c, "self", "10.0.0.100")
			createNode(t, c, "n5", relay, "10.0.0.15") // a marker: seen after the self change
		}, []string{"10.0.0.13 n3", "10.0.0.15 n5", "10.0.1.12 n2", "fd00::12 n2"}},
	}
	for _, s := range steps {
		start := time.Now()
		s.do()
		took := waitPeers(t, reg, changeBudget, s.want...)
		t.Logf("%-24s shown after %v (API call included: %v)", s.name, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	if n := w.WatchErrors(); n != 0 {
		t.Errorf("%d watch errors with a healthy API server", n)
	}
}

// TestAPIServerOutage: with the API server gone, the last peer set stays in
// use (the relay path reads the registry), errors are counted and logged,
// readiness stays green with a detail; once the server is back, the watch
// resumes and a new Node shows up.
func TestAPIServerOutage(t *testing.T) {
	cp := startControlPlane(t)
	c := cp.Client()
	createNode(t, c, "self", nil, "10.0.0.1")
	createNode(t, c, "n1", nil, "10.0.0.11")
	createNode(t, c, "n2", nil, "10.0.0.12")
	reg, w, metrics := watchPeers(t, nodeClient(t, cp.Config()), kube.Config{NodeName: "self"})
	want := []string{"10.0.0.11 n1", "10.0.0.12 n2"}
	waitPeers(t, reg, 10*time.Second, want...)
	before := reg.Snapshot()

	down := time.Now()
	cp.StopAPI()
	deadline := time.Now().Add(20 * time.Second)
	for w.Connected() || w.WatchErrors() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("API server down for 20 s, yet connected=%v errors=%d", w.Connected(), w.WatchErrors())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("outage noticed after %v: %s", time.Since(down).Round(time.Millisecond), w.Detail())

	// A while without the API server: the set must not be cleared or changed.
	for range 30 {
		if s := reg.Snapshot(); !s.Equal(before) {
			t.Fatalf("peer set changed during the outage: %q", peerStrings(s))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := w.Ready(); err != nil {
		t.Errorf("not ready during the outage (the relay still works): %v", err)
	}
	if d := w.Detail(); !strings.Contains(d, "unreachable") || !strings.Contains(d, "2 last known peers") {
		t.Errorf("detail does not say the API is unreachable: %q", d)
	}
	errs := metricValue(t, metrics, "gopmtud_kubernetes_watch_errors_total")
	if errs < 1 || metricValue(t, metrics, "gopmtud_kubernetes_connected") != 0 {
		t.Errorf("metrics during the outage: watch_errors_total=%v connected=%v", errs, metricValue(t, metrics, "gopmtud_kubernetes_connected"))
	}
	lastSync := metricValue(t, metrics, "gopmtud_kubernetes_last_sync_timestamp_seconds")
	if lastSync <= 0 || lastSync > float64(down.UnixNano())/1e9+0.5 {
		t.Errorf("last sync %v, want before the outage at %v", lastSync, float64(down.Unix()))
	}

	cp.StartAPI()
	up := time.Now()
	t.Logf("API server back after %v down", up.Sub(down).Round(time.Millisecond))
	createNode(t, c, "n3", nil, "10.0.0.13")
	// The reflector retries a refused watch with a backoff of up to 30 s.
	took := waitPeers(t, reg, 45*time.Second, "10.0.0.11 n1", "10.0.0.12 n2", "10.0.0.13 n3")
	t.Logf("watch resumed: new node seen %v after the API server was ready; %v watch errors counted",
		took.Round(time.Millisecond), w.WatchErrors())
	if !w.Connected() {
		t.Error("not connected after the watch resumed")
	}
	if s := metricValue(t, metrics, "gopmtud_kubernetes_last_sync_timestamp_seconds"); s < float64(up.Unix()) {
		t.Errorf("last sync %v not updated after the restart at %v", s, up.Unix())
	}
}

// metricValue reads one unlabelled gauge or counter.
func metricValue(t *testing.T, reg *expo.Registry, name string) float64 {
	t.Helper()
	v, ok := reg.Value(name)
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
	return v
}
