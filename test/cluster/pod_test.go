package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/go-pmtud/go-pmtud/internal/lab"
)

// Pod is the DaemonSet's pod on one node of the lab, run as a kubelet
// would run its container: the release's exact container in the runtime,
// in the node's network namespace.
type Pod struct {
	rt   *Runtime
	l    *lab.Lab
	node int
	rel  Release
	ID   string // the container's
	Name string // the pod's, in the API ("" for the runtime test's)
}

// nodeOf is what the kubelet of node i would know.
func nodeOf(l *lab.Lab, i int) Node {
	return Node{
		Name:   lab.NodeName(i),
		HostIP: l.NodeAddr(lab.IPv4, i).String(),
		NetNS:  "/var/run/netns/" + l.Nodes[i].Name,
	}
}

// startPod starts rel's container on node i (the image must be imported).
func startPod(t *testing.T, rt *Runtime, l *lab.Lab, i int, rel Release, dirs map[string]string) *Pod {
	t.Helper()
	c, err := Translate(rel.Pod, nodeOf(l, i), []string{entrypoint}, dirs)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pod{rt: rt, l: l, node: i, rel: rel, ID: fmt.Sprintf("%s-%s-%d", l.Prefix, lab.NodeName(i), time.Now().UnixNano()%1e6)}
	args := append([]string{"run", "-d"}, c.Flags...)
	args = append(append(args, rel.Image, p.ID), c.Argv...)
	if _, err := rt.Ctr(args...); err != nil {
		t.Fatalf("%s: %v\ncontainerd log:\n%s", lab.NodeName(i), err, rt.Log(20))
	}
	return p
}

// probe is the readiness probe's HTTP GET, from a socket in the node's
// namespace to the address the kubelet would use (the pod's IP, which for
// a hostNetwork pod is the node's).
func (p *Pod) probe() (string, error) {
	c := p.rel.Pod.Containers[0]
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil {
		return "", fmt.Errorf("no HTTP readiness probe")
	}
	port, err := portOf(c, rp.HTTPGet.Port.String())
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort(nodeOf(p.l, p.node).HostIP, strconv.Itoa(port))
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := p.l.Nodes[p.node].DialContext(dctx, "tcp", addr, nil)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", rp.HTTPGet.Path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", rp.HTTPGet.Path, resp.Status)
	}
	return rp.HTTPGet.Path, nil
}

func portOf(c corev1.Container, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no port named %s", name)
}

// waitReady polls the readiness probe until it passes (fails the test
// after timeout, or when the container exits).
func (p *Pod) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := p.probe()
		if err == nil {
			return
		}
		if st := p.status(); st != "RUNNING" || time.Now().After(deadline) {
			t.Fatalf("%s: not ready (task %s): %v\ncontainerd log:\n%s", p.ID, st, err, p.rt.Log(10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status is the task's status as ctr reports it (RUNNING, STOPPED, ...).
func (p *Pod) status() string {
	out, err := p.rt.Ctr("tasks", "ls")
	if err != nil {
		return "unknown: " + err.Error()
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == p.ID {
			return f[2]
		}
	}
	return "gone"
}

// pid is the container's process on the host.
func (p *Pod) pid() (int, error) {
	out, err := p.rt.Ctr("tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == p.ID {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("%s: no task", p.ID)
}

// exec runs a command in the container, as `kubectl exec` would.
func (p *Pod) exec(args ...string) (string, error) {
	id := fmt.Sprintf("exec%d", time.Now().UnixNano()%1e9)
	return p.rt.Ctr(append([]string{"tasks", "exec", "--exec-id", id, p.ID}, args...)...)
}

// stop ends the pod as the kubelet does: SIGTERM, SIGKILL after the
// grace period; then removes the container. It returns the exit status.
func (p *Pod) stop(t *testing.T) int {
	t.Helper()
	if _, err := p.rt.Ctr("tasks", "kill", "-s", "SIGTERM", p.ID); err != nil {
		t.Errorf("%s: %v", p.ID, err)
	}
	deadline := time.Now().Add(p.rel.Grace)
	for p.status() == "RUNNING" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p.status() == "RUNNING" {
		t.Errorf("%s: still running %v after SIGTERM: killed", p.ID, p.rel.Grace)
		_, _ = p.rt.Ctr("tasks", "kill", "-s", "SIGKILL", p.ID)
		time.Sleep(time.Second)
	}
	code := -1
	if out, err := p.rt.Ctr("tasks", "delete", p.ID); err == nil {
		code = exitCode(out)
	} else {
		t.Errorf("%s: %v", p.ID, err)
	}
	if _, err := p.rt.Ctr("containers", "delete", p.ID); err != nil {
		t.Errorf("%s: %v", p.ID, err)
	}
	return code
}

// exitCode reads `ctr tasks delete`'s output: silent on a clean exit, a
// warning "... exit with non-zero exit code N" otherwise.
func exitCode(out string) int {
	const marker = "non-zero exit code "
	i := strings.Index(out, marker)
	if i < 0 {
		return 0
	}
	f := strings.FieldsFunc(out[i+len(marker):], func(r rune) bool { return r < '0' || r > '9' })
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return -1
	}
	return n
}

// procStatus reads fields of the container process's /proc status.
func (p *Pod) procStatus() (map[string]string, error) {
	pid, err := p.pid()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// rootReadOnly says whether the container's / is mounted read-only.
func (p *Pod) rootReadOnly() (bool, error) {
	pid, err := p.pid()
	if err != nil {
		return false, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			return strings.HasPrefix(f[5], "ro"), nil
		}
	}
	return false, fmt.Errorf("no / in the container's mountinfo")
}
