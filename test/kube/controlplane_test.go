// Package kube_test runs go-pmtud's Kubernetes side against a real
// kube-apiserver and etcd on loopback: the Node watch, the deploy manifests,
// the Helm chart, RBAC, and a 5,000-node scale run.
//
// The binaries come from hack/kube-bins/build.sh (cached once per machine under
// ~/.cache/go-pmtud/kube-bins/<key>, or $KUBE_BINS_DIR); without them every test skips.
package kube_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// adminToken authenticates the tests as a cluster admin (system:masters).
const adminToken = "go-pmtud-test-admin"

// binDir returns where the kube-apiserver, etcd and helm binaries are, or
// skips the test when they are not built.
func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBE_BINS_DIR")
	if dir == "" {
		// The machine-wide cache folder for this version (hack/kube-bins/build.sh).
		out, err := exec.Command("bash", filepath.Join(repoRoot(t), "hack", "kube-bins", "build.sh"), "--dir").Output()
		if err != nil {
			t.Skipf("hack/kube-bins/build.sh --dir: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, b := range []string{"etcd", "kube-apiserver", "helm"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("%s not built in %s: run hack/kube-bins/build.sh first (~6-8 min once)", b, dir)
		}
	}
	return dir
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// controlPlane is an etcd and a kube-apiserver on loopback, stopped in
// t.Cleanup. The API server can be stopped and started again on the same
// port and data, to test a daemon across an outage.
type controlPlane struct {
	t      testing.TB
	dir    string
	bins   string
	URL    string // https://127.0.0.1:port
	CAFile string
	CA     []byte
	args   []string

	mu  sync.Mutex
	api *proc
}

// proc is a started process; done is closed when it has exited.
type proc struct {
	name     string
	cmd      *exec.Cmd
	done     chan struct{}
	stopping atomic.Bool
}

func startControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	bins := binDir(t)
	dir := t.TempDir()
	cp := &controlPlane{t: t, dir: dir, bins: bins}

	certPEM, keyPEM := selfSigned(t)
	cp.CA = certPEM
	cp.CAFile = writeFile(t, dir, "serving.crt", certPEM)
	keyFile := writeFile(t, dir, "serving.key", keyPEM)
	saKey := writeFile(t, dir, "sa.key", rsaKeyPEM(t))
	tokens := writeFile(t, dir, "tokens.csv", []byte(adminToken+",admin,admin-uid,system:masters\n"))

	etcdPort, etcdPeerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	etcd := cp.start("etcd", filepath.Join(bins, "etcd"),
		"--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=test="+peerURL,
		"--unsafe-no-fsync", // a test cluster need not survive a power cut
		"--log-level=warn")
	t.Cleanup(func() { stop(etcd) })
	waitHTTP(t, etcdURL+"/health", nil, 30*time.Second)

	cp.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	cp.args = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		// Without it the server refuses to advertise a loopback address.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + cp.CAFile, "--tls-private-key-file=" + keyFile,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--v=0",
	}
	cp.StartAPI()
	t.Cleanup(cp.StopAPI)
	return cp
}

// StartAPI starts kube-apiserver and waits until it is ready.
func (cp *controlPlane) StartAPI() {
	cp.t.Helper()
	cmd := cp.start("kube-apiserver", filepath.Join(cp.bins, "kube-apiserver"), cp.args...)
	cp.mu.Lock()
	cp.api = cmd
	cp.mu.Unlock()
	waitHTTP(cp.t, cp.URL+"/readyz", cp.CA, 60*time.Second)
}

// StopAPI kills kube-apiserver (etcd keeps running), as a crash or a
// network partition would look to a client.
func (cp *controlPlane) StopAPI() {
	cp.mu.Lock()
	cmd := cp.api
	cp.api = nil
	cp.mu.Unlock()
	stop(cmd)
}

func (cp *controlPlane) start(name, bin string, args ...string) *proc {
	cp.t.Helper()
	logf, err := os.OpenFile(filepath.Join(cp.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		cp.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Dies with the test binary even if cleanup never runs (panic, kill -9).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cp.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
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
			tail, _ := os.ReadFile(logf.Name())
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			cp.t.Logf("last of %s.log:\n%s", name, tail)
		}
	})
	return p
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

// Config returns a client configuration with the admin token.
func (cp *controlPlane) Config() *rest.Config {
	return cp.TokenConfig(adminToken)
}

// TokenConfig returns a client configuration authenticating with token.
func (cp *controlPlane) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA},
		// The tests create thousands of objects; the defaults (5/10) would
		// make that take minutes.
		QPS: 2000, Burst: 2000,
	}
}

// Client returns an admin clientset.
func (cp *controlPlane) Client() kubernetes.Interface {
	c, err := kubernetes.NewForConfig(cp.Config())
	if err != nil {
		cp.t.Fatal(err)
	}
	return c
}

// Kubeconfig writes a kubeconfig file for token and returns its path.
func (cp *controlPlane) Kubeconfig(token string) string {
	cp.t.Helper()
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
	return writeFile(cp.t, cp.t.TempDir(), "kubeconfig", []byte(cfg))
}

func waitHTTP(t testing.TB, url string, ca []byte, timeout time.Duration) {
	t.Helper()
	tr := &http.Transport{}
	if ca != nil {
		tc, err := rest.TLSConfigFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
		if err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = tc
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := c.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(b.String()))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %v: %s", url, timeout, last)
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

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSigned returns a serving certificate for 127.0.0.1 that is its own CA.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func rsaKeyPEM(t testing.TB) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}
