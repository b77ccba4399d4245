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
	"strings"
	"testing"
)

func TestDockerfileBuildsAStaticBinaryFromWhatItCopies(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Collect the build stage's COPY sources and its go build command.
	stage := t.TempDir()
	var build string
	var finalEntrypoint string
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
			finalEntrypoint = line
		}
	}
	if build == "" {
		t.Fatal("no go build step in the Dockerfile's build stage")
	}
	if finalEntrypoint != `ENTRYPOINT ["/go-pmtud"]` {
		t.Errorf("entrypoint %q: want the binary itself, exec form (no shell in the image)", finalEntrypoint)
	}

	// Run the build step as written, with /out inside the temp stage.
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(build, "/out/", filepath.Join(stage, "out")+"/"))
	cmd.Dir = stage
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build step fails on the files it copies: %v\n%s", err, out)
	}
	bin, err := elf.Open(filepath.Join(stage, "out", "go-pmtud"))
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a program interpreter: not static, would not run on distroless/static")
		}
	}
	if libs, _ := bin.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
}
