package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/go-pmtud/go-pmtud/internal/lab"
	"github.com/go-pmtud/go-pmtud/internal/testnet/controlplane"
)

// controllers are the kube-controller-manager's controllers a DaemonSet
// needs: its own, the garbage collector (helm uninstall deletes the
// DaemonSet; the collector deletes its pods), the publisher of the
// kube-root-ca.crt ConfigMap (every service-account token volume mounts
// it) and node lifecycle (the not-ready taint comes off a Ready node).
var controllers = []string{"daemonset-controller", "garbage-collector-controller",
	"root-ca-certificate-publisher-controller", "serviceaccount-controller", "node-lifecycle-controller"}

// Cluster is the lab as a Kubernetes cluster: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in node1's namespace (a
// control-plane node), a kubelet and containerd in every node's, and in
// every node what kube-proxy would give it for the kubernetes Service.
type Cluster struct {
	l        *lab.Lab
	cp       *controlplane.ControlPlane
	kubelets []*Kubelet
	home     string       // helm's state
	api      *http.Client // the test's own, kept alive across polls
}

// startCluster turns lab l into a cluster and waits for every Node Ready.
func startCluster(t *testing.T, l *lab.Lab) *Cluster {
	t.Helper()
	start := time.Now()
	c := &Cluster{l: l, home: t.TempDir()}
	var tokens []controlplane.Token
	for i := range l.Nodes {
		tokens = append(tokens, controlplane.Token{Token: kubeletToken(i), User: "system:node:" + lab.NodeName(i), Groups: []string{"system:nodes"}})
	}
	apiAddr := l.NodeAddr(lab.IPv4, 0)
	c.cp = controlplane.Start(t, controlplane.Options{
		Bins:  kubeBins,
		NetNS: nodeOf(l, 0).NetNS,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.Nodes[0].DialContext(ctx, network, addr, nil)
		},
		Address:     apiAddr,
		SANs:        []netip.Addr{controlplane.KubernetesService},
		Tokens:      tokens,
		Controllers: controllers,
	})
	c.api = c.cp.HTTPClient()
	t.Cleanup(c.api.CloseIdleConnections)
	svc := netip.AddrPortFrom(controlplane.KubernetesService, 443)
	for i := range l.Nodes {
		if err := l.InstallClusterIP(i, svc, netip.AddrPortFrom(apiAddr, uint16(c.cp.Port))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	c.kubelets = make([]*Kubelet, len(l.Nodes))
	for i := range l.Nodes {
		wg.Go(func() { c.kubelets[i] = startKubelet(t, l, i, c.cp.Kubeconfig(kubeletToken(i))) })
	}
	wg.Wait()
	// Registered after the kubelets' cleanups, so it runs before them.
	t.Cleanup(func() { c.dumpOnFailure(t) })
	if t.Failed() {
		t.FailNow()
	}
	c.kubectl(t, "wait", "--for=condition=Ready", "node", "--all", "--timeout=90s")
	t.Logf("cluster: control plane in %s, %d Nodes Ready in %.1f s", lab.NodeName(0), len(l.Nodes), time.Since(start).Seconds())
	return c
}

// dumpOnFailure logs what an operator would look at first: the nodes,
// pods and events, and each kubelet's last lines.
func (c *Cluster) dumpOnFailure(t *testing.T) {
	if !t.Failed() {
		return
	}
	for _, args := range [][]string{
		{"get", "nodes,pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"-n", "kube-system", "get", "pods", "-o", "jsonpath={.items[0].spec.volumes}{\"\\n\"}{.items[0].spec.containers[0].volumeMounts}"},
		{"-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=go-pmtud", "--prefix", "--tail=15"},
		{"-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=go-pmtud", "--prefix", "--tail=15", "--previous"},
	} {
		out, err := c.run(t, "kubectl", args...)
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for i, k := range c.kubelets {
		if k != nil {
			t.Logf("%s kubelet log:\n%s", lab.NodeName(i), k.logTail(25))
		}
	}
	// To look around by hand before the cleanup: the admin's kubeconfig and
	// node1's namespace are in the log.
	if d, err := time.ParseDuration(os.Getenv("PMTUD_CLUSTER_HOLD")); err == nil {
		t.Logf("holding %v: KUBECONFIG=%s nsenter --net=%s", d, c.cp.Kubeconfig(controlplane.AdminToken), nodeOf(c.l, 0).NetNS)
		time.Sleep(d)
	}
}

func kubeletToken(i int) string { return "kubelet-" + lab.NodeName(i) }

// run runs a command of the kube-bins (kubectl, helm) as the cluster's
// admin, in the project's root (paths like deploy/... are the README's).
func (c *Cluster) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := c.cp.Command(rctx, name, args...)
	cmd.Dir = root
	cmd.Env = append(cmd.Env, "HELM_CACHE_HOME="+c.home+"/cache", "HELM_CONFIG_HOME="+c.home+"/config",
		"HELM_DATA_HOME="+c.home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

func (c *Cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, "kubectl", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sh runs a README command line (its words as a shell would split this
// one: no quotes, no expansions), with kubectl and helm from the kube-bins.
func (c *Cluster) sh(t *testing.T, line string) string {
	t.Helper()
	words := strings.Fields(line)
	if words[0] == "helm" {
		words[0] = helmBin
	}
	out, err := c.run(t, words[0], words[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ %s\n%s", line, strings.TrimRight(out, "\n"))
	return out
}

// get GETs an API path as the admin, straight from the test (no process
// per poll), and decodes the JSON into v.
func (c *Cluster) get(path string, v any) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, c.cp.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+controlplane.AdminToken)
	resp, err := c.api.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// daemonPods are the go-pmtud pods (label app.kubernetes.io/name=go-pmtud)
// by node name.
func (c *Cluster) daemonPods() (map[string]corev1.Pod, error) {
	var list corev1.PodList
	if err := c.get("/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io%2Fname%3Dgo-pmtud", &list); err != nil {
		return nil, err
	}
	byNode := map[string]corev1.Pod{}
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			byNode[p.Spec.NodeName] = p
		}
	}
	return byNode, nil
}

// readyImage is the image of p's container if p is Ready and not being
// deleted, else "".
func readyImage(p corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return ""
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && len(p.Status.ContainerStatuses) > 0 {
			return p.Status.ContainerStatuses[0].Image
		}
	}
	return ""
}

// pods are the running go-pmtud pods in node order, each as the runtime
// on its node runs it (for the checks inside the container).
func (c *Cluster) pods(t *testing.T) []*Pod {
	t.Helper()
	byNode, err := c.daemonPods()
	if err != nil {
		t.Fatal(err)
	}
	var pods []*Pod
	for i, k := range c.kubelets {
		p, ok := byNode[lab.NodeName(i)]
		if !ok || readyImage(p) == "" {
			t.Fatalf("%s: no Ready go-pmtud pod (%v)", lab.NodeName(i), p.Status)
		}
		id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
		pods = append(pods, &Pod{rt: k.rt, l: c.l, node: i, rel: Release{Pod: p.Spec, Image: p.Spec.Containers[0].Image}, ID: id, Name: p.Name})
	}
	return pods
}

// waitNoPods waits until the API has no go-pmtud pod and no node's runtime
// a running container.
func (c *Cluster) waitNoPods(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		byNode, err := c.daemonPods()
		if err == nil && len(byNode) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go-pmtud pods still there after 60 s: %d (%v)", len(byNode), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, k := range c.kubelets {
		k.waitGone(t, 30*time.Second)
	}
}

// writeEdited copies the project file rel with old replaced by new into a
// temporary file (the README's "edit the image first").
func writeEdited(t *testing.T, rel, old, new string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q to edit", rel, old)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(rel))
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
