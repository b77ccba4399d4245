package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/lab"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
	"github.com/go-pmtud/go-pmtud/internal/testnet/ociimage"
)

// needRuntime skips the test (fails it where root tests are required)
// when it cannot run here.
func needRuntime(t *testing.T) {
	t.Helper()
	testnet.NeedRoot(t)
	if missing == "" {
		return
	}
	if testnet.RootRequired() {
		t.Fatalf("%s (%s=1 or CI=true: this test must run)", missing, testnet.RequireRootEnv)
	}
	t.Skip(missing)
}

const (
	// imageRepo is the repository the chart is told to use: the images are
	// imported into the runtime under it, never pulled.
	imageRepo = "go-pmtud.test/go-pmtud"
	// entrypoint is the image's (deploy/Dockerfile's) ENTRYPOINT.
	entrypoint = "/usr/local/bin/go-pmtud"
	// upgradeSuffix marks the second build: the version `helm upgrade` rolls to.
	upgradeSuffix = "-next"
	// pauseImage is the pod sandbox's image (./pause), built the same way.
	pauseImage = "go-pmtud.test/pause:1"
)

var (
	ctx     context.Context
	version string                // the chart's appVersion: the first image's tag
	images  = map[string]string{} // tag -> OCI layout tarball
	helmBin string
	// kubeBins is hack/kube-bins' folder; kubeletBin its kubelet.
	kubeBins, kubeletBin string
	root                 string
	// prefixes: every lab built, swept at the end (tests run one at a time).
	prefixes []string
	prefixMu sync.Mutex
	// missing says what the machine lacks for the runtime test, if anything.
	missing string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var stop context.CancelFunc
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if code := testnet.MainCheck("test/cluster"); code != 0 {
		return code
	}
	if testnet.NoRootReason() != "" {
		return m.Run() // every test skips itself with the reason
	}
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..")
	if missing = missingTools(); missing != "" {
		return m.Run() // the runtime test fails or skips with the reason
	}
	dir, err := os.MkdirTemp("", "go-pmtud-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildImages(dir); err != nil {
		fmt.Fprintf(os.Stderr, "building the images: %v\n", err)
		return 1
	}
	code := m.Run()
	// Whatever a failed or interrupted test left behind.
	for _, p := range prefixes {
		if err := lab.Teardown(p); err != nil {
			fmt.Fprintf(os.Stderr, "teardown %s: %v\n", p, err)
			code = 1
		}
	}
	return code
}

// missingTools says what this machine lacks to run the tests ("" if
// nothing): containerd, runc and ctr (hack/setup.sh installs them) and
// helm (hack/kube-bins/build.sh builds it).
func missingTools() string {
	var miss []string
	for _, t := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "unshare"} {
		if _, err := exec.LookPath(t); err != nil {
			miss = append(miss, t)
		}
	}
	if len(miss) > 0 {
		return "missing " + strings.Join(miss, ", ") + ": run hack/setup.sh"
	}
	dir := os.Getenv("KUBE_BINS_DIR")
	if dir == "" {
		out, err := exec.Command("bash", filepath.Join(root, "hack", "kube-bins", "build.sh"), "--dir").Output()
		if err != nil {
			return fmt.Sprintf("hack/kube-bins/build.sh --dir: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	kubeBins, helmBin = dir, filepath.Join(dir, "helm")
	if _, err := os.Stat(helmBin); err != nil {
		return "helm not built in " + dir + ": run hack/kube-bins/build.sh (or make test-cluster)"
	}
	kubeletBin = filepath.Join(dir, "kubelet")
	return ""
}

// missingKube says which of the cluster's binaries hack/kube-bins has not
// built ("" if none): then only the runtime test can run.
func missingKube() string {
	var miss []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(kubeBins, b)); err != nil {
			miss = append(miss, b)
		}
	}
	if len(miss) == 0 {
		return ""
	}
	return fmt.Sprintf("%s not built in %s: run hack/kube-bins/build.sh", strings.Join(miss, ", "), kubeBins)
}

// buildImages builds go-pmtud twice (the chart's appVersion and the
// upgrade's), static as deploy/Dockerfile builds it, and writes each alone
// in an OCI image under dir.
func buildImages(dir string) error {
	out, err := exec.Command("sed", "-n", `s/^appVersion: *"*\([^"]*\)"*/\1/p`, filepath.Join(root, "deploy", "helm", "go-pmtud", "Chart.yaml")).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return fmt.Errorf("reading the chart's appVersion: %v", err)
	}
	version = strings.TrimSpace(string(out))
	for _, tag := range []string{version, version + upgradeSuffix} {
		bin := filepath.Join(dir, "go-pmtud-"+tag)
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(bctx, "go", "build", "-trimpath", "-ldflags",
			"-s -w -X github.com/go-pmtud/go-pmtud/internal/version.version="+tag, "-o", bin, "./cmd/go-pmtud")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		b, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("go build: %v\n%s", err, b)
		}
		if images[tag], err = writeImage(dir, bin, imageRepo+":"+tag, entrypoint); err != nil {
			return err
		}
	}
	bin := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/cluster/pause")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build pause: %v\n%s", err, b)
	}
	images[pauseImage], err = writeImage(dir, bin, pauseImage, "/pause")
	return err
}

func writeImage(dir, bin, name, entrypoint string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "image-"+filepath.Base(bin)+".tar")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	err = ociimage.Write(f, ociimage.Image{
		Name:       name,
		Arch:       runtime.GOARCH,
		Entrypoint: []string{entrypoint},
		Files:      []ociimage.File{{Path: entrypoint, Mode: 0o755, Data: data}},
	})
	if err != nil {
		return "", err
	}
	return path, f.Close()
}
