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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/go-pmtud/go-pmtud/internal/lab"
)

// kubeletConfig runs the kubelet standalone (static pods from a folder,
// no API server), with its state under the test's directory:
//   - protectKernelDefaults: it must not set the machine's vm.* and
//     kernel.* sysctls (they are not per namespace); it only checks them,
//     and sees the values it wants through files bound over them in its
//     own mount namespace (kubeletScript).
//   - failCgroupV1: false: this machine has cgroup v1.
//   - cgroupsPerQOS: false: no kubepods hierarchy left on the machine.
//   - fileCheckFrequency: 1s: an edited manifest (an upgrade) is seen at once.
//   - readOnlyPort: the test reads the pods' status from it, inside the node.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %[1]s/manifests
fileCheckFrequency: 1s
containerRuntimeEndpoint: unix://%[2]s
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
protectKernelDefaults: true
failSwapOn: false
address: 127.0.0.1
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
// imported, and waits until the kubelet answers.
func startKubelet(t *testing.T, l *lab.Lab, i int) *Kubelet {
	t.Helper()
	n := nodeOf(l, i)
	rt := StartRuntime(t, RuntimeOptions{NetNS: n.NetNS, SandboxImage: pauseImage})
	for name, img := range images {
		if _, err := rt.Ctr("images", "import", img); err != nil {
			t.Fatalf("importing %s: %v", name, err)
		}
	}
	k := &Kubelet{l: l, node: i, rt: rt, dir: filepath.Join(rt.Dir(), "kubelet")}
	for _, d := range []string{"manifests", "logs", "root", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(k.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(k.dir, "config.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, kubeletConfig, k.dir, rt.Socket()), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := k.script(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(k.dir, "kubelet.log"))
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command("nsenter", "--net="+n.NetNS, "unshare", "--mount", "--propagation", "slave", "sh", "-c", script)
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

// script prepares the kubelet's own mount namespace, then runs it: empty
// /var/lib and /var/log (it writes /var/lib/kubelet/device-plugins and
// /var/log/containers whatever its flags say; the machine's stay
// untouched), and the values it checks bound over the kernel's.
func (k *Kubelet) script(cfg string, n Node) (string, error) {
	var b strings.Builder
	b.WriteString("set -e\nmount -t tmpfs tmpfs /var/lib\nmount -t tmpfs tmpfs /var/log\n")
	for key, v := range kernelDefaults {
		f := filepath.Join(k.dir, "sysctl", strings.ReplaceAll(key, "/", "_"))
		if err := os.WriteFile(f, []byte(v+"\n"), 0o444); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "mount --bind %s /proc/sys/%s\n", f, key)
	}
	fmt.Fprintf(&b, "exec %s --config %s --root-dir %s/root --cert-dir %s/pki --hostname-override %s --node-ip %s -v 1\n",
		kubeletBin, cfg, k.dir, k.dir, n.Name, n.HostIP)
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

// apply writes rel's pod as the node's static pod (install or upgrade);
// a nil rel removes it (uninstall).
func (k *Kubelet) apply(rel *Release, dirs map[string]string) error {
	path := filepath.Join(k.dir, "manifests", "go-pmtud.yaml")
	if rel == nil {
		return os.Remove(path)
	}
	b, err := staticPod(*rel, nodeOf(k.l, k.node), dirs)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path) // the kubelet never reads half a file
}

// staticPod is the DaemonSet's pod as a static pod. A static pod may not
// reference API objects: the ServiceAccount goes (there is no API server,
// and Kubernetes discovery is off), and a Secret volume becomes a hostPath
// of the directory the test wrote the Secret's files into (with the
// Secret's defaultMode). And a kubelet without an API server leaves the
// pod's IP empty (pkg/kubelet/kubelet_pods.go sets a hostNetwork pod's IPs
// only when it has a client), so its probes would dial ":4441"; they get
// the address they would have with one, the node's.
func staticPod(rel Release, node Node, dirs map[string]string) ([]byte, error) {
	spec := *rel.Pod.DeepCopy()
	spec.ServiceAccountName, spec.DeprecatedServiceAccount = "", ""
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Host == "" {
				p.HTTPGet.Host = node.HostIP
			}
		}
	}
	for i, v := range spec.Volumes {
		if v.Secret == nil {
			continue
		}
		d, ok := dirs[v.Name]
		if !ok {
			return nil, fmt.Errorf("volume %s: no directory for its Secret", v.Name)
		}
		dirType := corev1.HostPathDirectory
		spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: d, Type: &dirType}}
	}
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "go-pmtud", Namespace: "kube-system"},
		Spec:       spec,
	}
	return yaml.Marshal(pod)
}

// readyPod returns the running go-pmtud pod's container if the kubelet
// reports it Ready with image; "" otherwise, with what it sees.
func (k *Kubelet) readyPod(image string) (id, seen string) {
	pods, err := k.pods()
	if err != nil {
		return "", err.Error()
	}
	for _, p := range pods {
		if !strings.HasPrefix(p.Name, "go-pmtud") || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.ContainerStatuses {
			seen = fmt.Sprintf("%s phase %s (pod IP %q, host IP %q): %s ready=%v image %s", p.Name, p.Status.Phase, p.Status.PodIP, p.Status.HostIP, c.Name, c.Ready, c.Image)
			if c.Ready && c.Image == image && strings.HasPrefix(c.ContainerID, "containerd://") {
				return strings.TrimPrefix(c.ContainerID, "containerd://"), seen
			}
		}
		if seen == "" {
			seen = fmt.Sprintf("%s phase %s, no container status yet", p.Name, p.Status.Phase)
		}
	}
	return "", seen
}

// waitReady waits for the kubelet to report rel's pod Ready (its own
// readiness probe passed) and returns it.
func (k *Kubelet) waitReady(t *testing.T, rel Release, timeout time.Duration) *Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		id, seen := k.readyPod(rel.Image)
		if id != "" {
			return &Pod{rt: k.rt, l: k.l, node: k.node, rel: rel, ID: id}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: kubelet reports no Ready pod of %s after %v (sees: %s); kubelet log:\n%s",
				lab.NodeName(k.node), rel.Image, timeout, seen, k.logTail(15))
		}
		time.Sleep(200 * time.Millisecond)
	}
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
