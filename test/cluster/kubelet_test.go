package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/go-pmtud/go-pmtud/internal/lab"
)

// kubeletConfig: the kubelet of a node of the lab's cluster, its state
// under the test's directory:
//   - protectKernelDefaults: it must not set the machine's vm.* and
//     kernel.* sysctls (they are not per namespace); it only checks them,
//     and sees the values it wants through files bound over them in its
//     own mount namespace (kubeletScript).
//   - failCgroupV1: false: this machine has cgroup v1.
//   - cgroupsPerQOS: false: no kubepods hierarchy left on the machine.
//   - address: every address of the node's namespace: kube-apiserver in
//     node1 reaches it there for `kubectl exec`. Anonymous and
//     AlwaysAllow: the lab's namespaces are the test's own.
//   - readOnlyPort: the test reads the pods' containers from it.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[2]s
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
protectKernelDefaults: true
failSwapOn: false
address: 0.0.0.0
healthzBindAddress: 127.0.0.1
readOnlyPort: 10255
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
podLogsDir: %[1]s/logs
resolvConf: ""
localStorageCapacityIsolation: false
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`

// kernelDefaults are the values the kubelet checks under protectKernelDefaults.
var kernelDefaults = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
}

// Kubelet is one node's kubelet and its own containerd (CRI), both in the
// node's network namespace.
type Kubelet struct {
	l    *lab.Lab
	node int
	rt   *Runtime
	dir  string
	cmd  *exec.Cmd
}

// startKubelet starts containerd and a kubelet for node i, with the images
// imported, registering the node with the API server of kubeconfig, and
// waits until the kubelet answers. The two share one mount namespace, as
// on a node: the volumes the kubelet mounts (the service account token,
// Secrets) are what the runtime binds into the container.
func startKubelet(t *testing.T, l *lab.Lab, i int, kubeconfig string) *Kubelet {
	t.Helper()
	n := nodeOf(l, i)
	k := &Kubelet{l: l, node: i, dir: t.TempDir()}
	for _, d := range []string{"logs", "root", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(k.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	setup, err := k.mountSetup()
	if err != nil {
		t.Fatal(err)
	}
	k.rt = StartRuntime(t, RuntimeOptions{NetNS: n.NetNS, SandboxImage: pauseImage, Setup: setup})
	for name, img := range images {
		if _, err := k.rt.Ctr("images", "import", img); err != nil {
			t.Fatalf("importing %s: %v", name, err)
		}
	}
	cfg := filepath.Join(k.dir, "config.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, kubeletConfig, k.dir, k.rt.Socket()), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(k.dir, "kubelet.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Both families' addresses: go-pmtud's peers come from the Node's InternalIPs.
	k.cmd = exec.Command("nsenter", "--net="+n.NetNS, "--mount="+k.rt.MountNS(), kubeletBin,
		"--config", cfg, "--kubeconfig", kubeconfig, "--root-dir", k.dir+"/root", "--cert-dir", k.dir+"/pki",
		"--hostname-override", n.Name, "--node-ip", n.HostIP+","+l.NodeAddr(lab.IPv6, i).String(), "-v", "1")
	k.cmd.Stdout, k.cmd.Stderr = log, log
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.stop(); log.Close() }) // before the runtime's cleanup
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := k.pods(); err == nil {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: kubelet not answering after 60 s; log:\n%s", n.Name, k.logTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mountSetup prepares the node's mount namespace (the runtime's and the
// kubelet's): empty /var/lib and /var/log (the kubelet writes
// /var/lib/kubelet/device-plugins and /var/log/containers whatever its
// flags say; the machine's stay untouched), and the values it checks
// bound over the kernel's.
func (k *Kubelet) mountSetup() (string, error) {
	var b strings.Builder
	b.WriteString("set -e\nmount -t tmpfs tmpfs /var/lib\nmount -t tmpfs tmpfs /var/log\n")
	for key, v := range kernelDefaults {
		f := filepath.Join(k.dir, "sysctl", strings.ReplaceAll(key, "/", "_"))
		if err := os.WriteFile(f, []byte(v+"\n"), 0o444); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "mount --bind %s /proc/sys/%s\n", f, key)
	}
	return b.String(), nil
}

func (k *Kubelet) logTail(lines int) string {
	b, _ := os.ReadFile(filepath.Join(k.dir, "kubelet.log"))
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

func (k *Kubelet) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	stopGroup(k.cmd)
}

// stopGroup stops cmd's process group (started with Setpgid): SIGTERM,
// then SIGKILL after 10 s, and reaps it.
func stopGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// pods is the kubelet's own view of its pods (its read-only port, from
// inside the node).
func (k *Kubelet) pods() ([]corev1.Pod, error) {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := k.l.Nodes[k.node].DialContext(dctx, "tcp", "127.0.0.1:10255", nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /pods HTTP/1.0\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubelet /pods: %v %s", err, resp.Status)
	}
	var list corev1.PodList
	return list.Items, json.Unmarshal(body, &list)
}

// waitGone waits until the kubelet has no go-pmtud pod and the runtime
// no running container.
func (k *Kubelet) waitGone(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pods, err := k.pods()
		running, _ := k.rt.Ctr("tasks", "ls")
		if err == nil && len(pods) == 0 && strings.Count(strings.TrimSpace(running), "\n") == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pods still there %v after %v (%d pods, tasks:\n%s)", lab.NodeName(k.node), timeout, err, len(pods), running)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
