// Package controlplane starts a Kubernetes control plane for tests: etcd
// and kube-apiserver, and optionally kube-controller-manager and
// kube-scheduler, built by hack/kube-bins. It runs on loopback in the
// caller's network namespace, or inside a lab node's namespace where
// kubelets in the other nodes reach it over the lab's fabric.
//
// Every process dies with the test binary (parent-death signal) and is
// stopped by the test's cleanup; its log is printed when the test failed.
package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// AdminToken authenticates as a cluster admin (system:masters).
const AdminToken = "go-pmtud-test-admin"

// Token is a static bearer token and who it authenticates as.
type Token struct {
	Token, User string
	Groups      []string
}

// Options say where the control plane runs and what it serves.
type Options struct {
	// Bins is the folder of the binaries (hack/kube-bins/build.sh --dir).
	Bins string
	// NetNS, if set, is the network namespace (a path) every process runs
	// in; Dial must then reach into it.
	NetNS string
	Dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	// Address is what kube-apiserver serves and advertises (127.0.0.1 if
	// unset; then its port is a free one, else 6443).
	Address netip.Addr
	// SANs are more addresses of the serving certificate: the kubernetes
	// Service's ClusterIP, for pods that use the in-cluster configuration.
	SANs []netip.Addr
	// Tokens are accepted besides AdminToken (kubelets', a daemon's).
	Tokens []Token
	// Controllers, if any, start kube-controller-manager with just these
	// controllers, and kube-scheduler.
	Controllers []string
}

// ServiceCIDR is the Services' range; the kubernetes Service gets its first
// address.
const ServiceCIDR = "10.96.0.0/16"

// KubernetesService is the ClusterIP of the kubernetes Service.
var KubernetesService = netip.MustParseAddr("10.96.0.1")

// ControlPlane is a running control plane.
type ControlPlane struct {
	t      testing.TB
	o      Options
	Dir    string
	URL    string // https://address:port
	Port   int
	CAFile string // the serving certificate, its own CA
	CA     []byte
	args   []string

	mu  sync.Mutex
	api *proc
}

// proc is a started process; done is closed when it has exited.
type proc struct {
	cmd      *exec.Cmd
	done     chan struct{}
	stopping atomic.Bool
}

// Start starts the control plane and waits until kube-apiserver is ready.
func Start(t testing.TB, o Options) *ControlPlane {
	t.Helper()
	cp := &ControlPlane{t: t, o: o, Dir: t.TempDir()}
	if !o.Address.IsValid() {
		cp.o.Address = netip.MustParseAddr("127.0.0.1")
	}
	certPEM, keyPEM := selfSigned(t, append([]netip.Addr{cp.o.Address}, o.SANs...))
	cp.CA = certPEM
	cp.CAFile = cp.write("serving.crt", certPEM)
	keyFile := cp.write("serving.key", keyPEM)
	saKey := cp.write("sa.key", rsaKeyPEM(t))
	tokens := AdminToken + ",admin,admin-uid,system:masters\n"
	for _, tk := range o.Tokens {
		tokens += fmt.Sprintf("%s,%s,%s-uid,%q\n", tk.Token, tk.User, tk.User, strings.Join(tk.Groups, ","))
	}
	tokenFile := cp.write("tokens.csv", []byte(tokens))

	etcdPort, etcdPeerPort, apiPort := 2379, 2380, 6443
	if o.NetNS == "" {
		etcdPort, etcdPeerPort, apiPort = freePort(t), freePort(t), freePort(t)
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	etcd := cp.start("etcd", "--name=test", "--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=test="+peerURL,
		"--unsafe-no-fsync", // a test cluster need not survive a power cut
		"--log-level=warn")
	t.Cleanup(func() { stop(etcd) })
	cp.waitHTTP(etcdURL+"/health", 30*time.Second)

	cp.Port = apiPort
	cp.URL = "https://" + net.JoinHostPort(cp.o.Address.String(), strconv.Itoa(apiPort))
	cp.args = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + cp.o.Address.String(), "--advertise-address=" + cp.o.Address.String(),
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(cp.Dir, "certs"),
		"--tls-cert-file=" + cp.CAFile, "--tls-private-key-file=" + keyFile,
		"--token-auth-file=" + tokenFile,
		// As kubeadm: kubelets may touch only their own Node and pods.
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=" + ServiceCIDR,
		// Reach kubelets (exec, logs) by the Node's address, never by a
		// name lookup (the machine's resolver is outside the lab).
		"--kubelet-preferred-address-types=InternalIP",
		"--v=0",
	}
	if cp.o.Address.IsLoopback() {
		// Without it the server refuses to advertise a loopback address.
		cp.args = append(cp.args, "--endpoint-reconciler-type=none")
	}
	cp.StartAPI()
	t.Cleanup(cp.StopAPI)
	if len(o.Controllers) > 0 {
		cp.startControllers(saKey)
	}
	return cp
}

// startControllers starts kube-controller-manager (only o.Controllers) and
// kube-scheduler, both as cluster admins, without leader election.
func (cp *ControlPlane) startControllers(saKey string) {
	kubeconfig := cp.Kubeconfig(AdminToken)
	cm := cp.start("kube-controller-manager", "--kubeconfig="+kubeconfig,
		"--controllers="+strings.Join(cp.o.Controllers, ","),
		"--root-ca-file="+cp.CAFile, "--service-account-private-key-file="+saKey,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10257",
		"--cert-dir="+filepath.Join(cp.Dir, "cm-certs"), "--v=0")
	sched := cp.start("kube-scheduler", "--kubeconfig="+kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259",
		"--cert-dir="+filepath.Join(cp.Dir, "sched-certs"), "--v=0")
	cp.t.Cleanup(func() { stop(cm); stop(sched) })
}

// StartAPI starts kube-apiserver and waits until it is ready.
func (cp *ControlPlane) StartAPI() {
	cp.t.Helper()
	p := cp.start("kube-apiserver", cp.args...)
	cp.mu.Lock()
	cp.api = p
	cp.mu.Unlock()
	cp.waitHTTP(cp.URL+"/readyz", 60*time.Second)
}

// StopAPI kills kube-apiserver (etcd keeps running), as a crash or a
// network partition would look to a client.
func (cp *ControlPlane) StopAPI() {
	cp.mu.Lock()
	p := cp.api
	cp.api = nil
	cp.mu.Unlock()
	stop(p)
}

// Command is name (a binary of Bins, or a path) with args, run where the
// control plane runs, as its admin (KUBECONFIG).
func (cp *ControlPlane) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if !filepath.IsAbs(name) {
		name = filepath.Join(cp.o.Bins, name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if cp.o.NetNS != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + cp.o.NetNS, name}, args...)...)
	}
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig(AdminToken))
	return cmd
}

func (cp *ControlPlane) start(name string, args ...string) *proc {
	cp.t.Helper()
	logf, err := os.OpenFile(filepath.Join(cp.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		cp.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(cp.o.Bins, name), args...)
	if cp.o.NetNS != "" {
		// nsenter execs the binary: the parent-death signal stays.
		cmd = exec.Command("nsenter", append([]string{"--net=" + cp.o.NetNS, cmd.Path}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Dies with the test binary even if cleanup never runs (panic, kill -9).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cp.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if !p.stopping.Load() {
			// Said at once: a test waiting on the API would only time out.
			cp.t.Errorf("%s exited on its own: %v", name, err)
		}
		close(p.done)
	}()
	cp.t.Cleanup(func() {
		logf.Close()
		if cp.t.Failed() {
			cp.t.Logf("last of %s.log:\n%s", name, tail(logf.Name(), 4000))
		}
	})
	return p
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// stop kills the process: a graceful API server stop takes seconds, and the
// tests have nothing to flush.
func stop(p *proc) {
	if p == nil {
		return
	}
	p.stopping.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Kubeconfig writes a kubeconfig file for token and returns its path.
func (cp *ControlPlane) Kubeconfig(token string) string {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, cp.URL, cp.CAFile, token)
	return cp.write("kubeconfig-"+token, []byte(cfg))
}

// HTTPClient is a client trusting the serving certificate, dialling
// through Options.Dial if set.
func (cp *ControlPlane) HTTPClient() *http.Client {
	tr := &http.Transport{TLSClientConfig: cp.TLSConfig()}
	if cp.o.Dial != nil {
		tr.DialContext = cp.o.Dial
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func (cp *ControlPlane) waitHTTP(url string, timeout time.Duration) {
	cp.t.Helper()
	c := cp.HTTPClient()
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := c.Do(req)
		if err == nil {
			body := readAll(resp)
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	cp.t.Fatalf("%s not ready after %v: %s", url, timeout, last)
}

func (cp *ControlPlane) write(name string, b []byte) string {
	cp.t.Helper()
	p := filepath.Join(cp.Dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		cp.t.Fatal(err)
	}
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
