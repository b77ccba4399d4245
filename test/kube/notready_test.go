package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestNotReadyNodeKeepsReadiness: a Node whose kubelet stopped (NotReady,
// still registered, its address answering nobody) stays a peer, and with
// l2 it is a readiness detail and a state in gopmtud_peer_states, not a red
// readiness: one dead node must not make every go-pmtud pod NotReady.
func TestNotReadyNodeKeepsReadiness(t *testing.T) {
	testnet.NeedRoot(t)
	cp := startControlPlane(t)
	c := cp.Client()
	bin := buildDaemon(t)
	createNode(t, c, "self", nil, "10.99.0.1")
	createNode(t, c, "down", nil, "10.99.0.2")
	setReady(t, c, "down", "Unknown")

	ns := newNetns(t)
	// An uplink whose far end answers nobody: ARP for the NotReady node fails.
	if err := netnsutil.Do(ns, func() error {
		for _, args := range [][]string{
			{"link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"},
			{"link", "set", "eth0p", "up"}, {"link", "set", "eth0", "up"},
			{"addr", "add", "10.99.0.1/24", "dev", "eth0"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("ip %v: %v %s", args, err, out)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	port := forwardInto(t, ns, strings.TrimPrefix(cp.URL, "https://"))
	kc := strings.Replace(string(mustRead(t, cp.Kubeconfig(adminToken))), cp.URL, fmt.Sprintf("https://127.0.0.1:%d", port), 1)
	kcFile := writeFile(t, t.TempDir(), "kubeconfig", []byte(kc))
	d := startDaemon(t, ns, bin, "--kubernetes=true", "--kubeconfig="+kcFile, "--firewall=none", "--transport=l2",
		"--nodename=self", "--iface=eth0", "--log-format=text", fmt.Sprintf("--nflog-group=%d", 40000+os.Getpid()%20000))
	d.waitPeers(t, 1, 30*time.Second)

	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", 32000+os.Getpid()%1000) // startDaemon's health port
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		code := 0
		if resp, err := d.client.Get(ready); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		if code == 200 && (strings.Contains(body, "down failed") || strings.Contains(body, "down unresolved")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness with a NotReady peer: HTTP %d\n%s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ready with the NotReady node as a detail:\n%s", body)
}

// setReady patches a Node's Ready condition through the status subresource.
func setReady(t *testing.T, c kubernetes.Interface, name, status string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []map[string]any{{
		"type": "Ready", "status": status, "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
		"lastHeartbeatTime": time.Now().UTC().Format(time.RFC3339), "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}}})
	if _, err := c.CoreV1().Nodes().Patch(context.Background(), name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("set %s Ready=%s: %v", name, status, err)
	}
}
