package image

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// chartAppVersion is the one version string: the chart's appVersion, which
// is also the image tag the chart defaults to and the binary's version.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "go-pmtud", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "appVersion:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	t.Fatal("Chart.yaml has no appVersion")
	return ""
}

// TestDockerfileCrossCompilesStaticBinaries runs the build step as buildx
// would for each platform of the release and checks each result is a static
// ELF of its architecture carrying the version it was given.
func TestDockerfileCrossCompilesStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon twice")
	}
	ver := chartAppVersion(t)
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		t.Run(arch, func(t *testing.T) {
			stage, build, _ := stageBuild(t)
			bin := runBuild(t, stage, build, "TARGETOS=linux", "TARGETARCH="+arch, "VERSION="+ver, "REVISION=0123456789abcdef")
			checkStatic(t, bin, machine)
			if arch != runtime.GOARCH {
				return
			}
			out, err := exec.Command(bin, "version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "go-pmtud "+ver+" (revision 0123456789abcdef") {
				t.Fatalf("version: %v %q", err, out)
			}
		})
	}
}

// TestOneVersionEverywhere: README, manifests and chart name the same version.
func TestOneVersionEverywhere(t *testing.T) {
	ver := chartAppVersion(t)
	root := filepath.Join("..", "..")
	for _, f := range []string{"README.md", "deploy/daemonset.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "go-pmtud:"+ver) {
			t.Errorf("%s does not name the image go-pmtud:%s", f, ver)
		}
		if strings.Contains(string(b), "go-pmtud:latest") || strings.Contains(string(b), "go-pmtud:v"+ver) {
			t.Errorf("%s names another tag than %s", f, ver)
		}
	}
}
