// Package kube_test runs go-pmtud's Kubernetes side against a real
// kube-apiserver and etcd on loopback: the Node watch, the deploy manifests,
// the Helm chart, RBAC, and a 5,000-node scale run.
//
// The binaries come from hack/kube-bins/build.sh (cached once per machine under
// ~/.cache/go-pmtud/kube-bins/<key>, or $KUBE_BINS_DIR); without them every test skips.
package kube_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/go-pmtud/go-pmtud/internal/testnet/controlplane"
)

// adminToken authenticates the tests as a cluster admin (system:masters).
const adminToken = controlplane.AdminToken

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

// controlPlane is an etcd and a kube-apiserver on loopback
// (internal/testnet/controlplane), stopped in t.Cleanup, with client-go
// configurations for the tests. The API server can be stopped and started
// again on the same port and data, to test a daemon across an outage.
type controlPlane struct {
	*controlplane.ControlPlane
	t testing.TB
}

func startControlPlane(t testing.TB) *controlPlane {
	t.Helper()
	return &controlPlane{controlplane.Start(t, controlplane.Options{Bins: binDir(t)}), t}
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

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
