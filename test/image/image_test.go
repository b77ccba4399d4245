// Package image checks deploy/Dockerfile without a container engine: its
// build step, run on exactly the files it copies into the build stage,
// must produce a static binary (the final stage has no libc and no shell).
package image

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// stageBuild copies what the Dockerfile's build stage copies into a temp
// directory and returns it with the stage's go build command.
func stageBuild(t *testing.T) (stage, build, entrypoint string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	stage = t.TempDir()
	copyLine := regexp.MustCompile(`^COPY\s+(?:--from=\S+\s+)?(.+)\s+(\S+)$`)
	sc := bufio.NewScanner(f)
	inBuild := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			inBuild = strings.Contains(line, " AS build")
		case inBuild && strings.HasPrefix(line, "COPY "):
			m := copyLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("cannot read %q", line)
			}
			for _, src := range strings.Fields(m[1]) {
				dst := filepath.Join(stage, strings.TrimSuffix(m[2], "/"))
				if !strings.HasSuffix(m[2], "/") {
					dst = filepath.Join(stage, m[2])
				} else {
					dst = filepath.Join(dst, filepath.Base(src))
				}
				if src == "go.mod" || src == "go.sum" {
					dst = filepath.Join(stage, src)
				}
				if out, err := exec.Command("cp", "-r", filepath.Join(root, src), dst).CombinedOutput(); err != nil {
					t.Fatalf("COPY %s: %v %s", src, err, out)
				}
			}
		case inBuild && strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			build = strings.TrimPrefix(line, "RUN ")
		case strings.HasPrefix(line, "ENTRYPOINT"):
			entrypoint = line
		}
	}
	if build == "" {
		t.Fatal("no go build step in the Dockerfile's build stage")
	}
	return stage, build, entrypoint
}

// runBuild runs the build step as written, with /out inside the stage and
// env as the Dockerfile's ARGs, and returns the binary's path.
func runBuild(t *testing.T, stage, build string, env ...string) string {
	t.Helper()
	out := filepath.Join(stage, "out")
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(build, "/out/", out+"/"))
	cmd.Dir = stage
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build step fails on the files it copies: %v\n%s", err, b)
	}
	return filepath.Join(out, "go-pmtud")
}

// checkStatic fails unless path is a static ELF for machine.
func checkStatic(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	bin, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	if bin.Machine != machine {
		t.Errorf("%s: machine %v, want %v", path, bin.Machine, machine)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a program interpreter: not static, would not run on distroless/static")
		}
	}
	if libs, _ := bin.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
}

func TestDockerfileBuildsAStaticBinaryFromWhatItCopies(t *testing.T) {
	stage, build, entrypoint := stageBuild(t)
	if entrypoint != `ENTRYPOINT ["/usr/local/bin/go-pmtud"]` {
		t.Errorf("entrypoint %q: want the binary itself, exec form (no shell in the image)", entrypoint)
	}
	native := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	checkStatic(t, runBuild(t, stage, build), native)
}
