package main

import (
	"os/exec"
	"strings"
	"testing"
)

const sample = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: chatter of a passing test\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: needs root\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: boom\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"--- FAIL: TestC (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}
{"Action":"fail","Package":"p"}
{"Action":"output","Package":"q","Output":"PASS\n"}
{"Action":"output","Package":"q","Output":"ok  \tq\t0.01s\n"}
{"Action":"pass","Package":"q"}
`

func TestSummary(t *testing.T) {
	var b strings.Builder
	failed := summarize(strings.NewReader(sample), &b, false)
	got := b.String()
	want := "    b_test.go:3: needs root\n--- SKIP: TestB (0.00s)\n" +
		"    c_test.go:5: boom\n--- FAIL: TestC (0.00s)\n" +
		"    p: 0 passed, 1 failed, 1 skipped\n" +
		"FAIL\nFAIL\tp\t0.01s\n" +
		"ok  \tq\t0.01s\n"
	// TestA passed: its count is in p's line... p has 1 pass.
	want = strings.Replace(want, "0 passed", "1 passed", 1)
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !failed {
		t.Error("a failed test was not reported as a failure")
	}
}

func TestSummaryPassing(t *testing.T) {
	var b strings.Builder
	in := `{"Action":"output","Package":"q","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"q","Test":"TestA"}
{"Action":"output","Package":"q","Output":"ok  \tq\t0.01s\n"}
{"Action":"pass","Package":"q"}
`
	if summarize(strings.NewReader(in), &b, false) {
		t.Error("reported a failure for a passing run")
	}
	if want := "    q: 1 passed, 0 failed, 0 skipped\nok  \tq\t0.01s\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestPlainFailLine(t *testing.T) {
	var b strings.Builder
	if !summarize(strings.NewReader("FAIL\tx [build failed]\n"), &b, false) {
		t.Error("a plain FAIL line was not a failure")
	}
}

// TestRealGoTest runs go test -json on a tiny package and checks the skip
// reason survives (the format is go's, not ours).
func TestRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the go command")
	}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := exec.Command("sh", "-c", "cat > "+dir+"/"+name+" <<'X'\n"+body+"\nX").Run(); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n\ngo 1.22")
	write("x_test.go", "package x\nimport \"testing\"\nfunc TestS(t *testing.T) { t.Skip(\"the reason\") }\nfunc TestP(t *testing.T) { t.Log(\"chatter\") }")
	cmd := exec.Command("go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go test: %v\n%s", err, out)
	}
	var b strings.Builder
	if summarize(strings.NewReader(string(out)), &b, false) {
		t.Errorf("reported a failure:\n%s", b.String())
	}
	got := b.String()
	if !strings.Contains(got, "the reason") || !strings.Contains(got, "--- SKIP: TestS") || strings.Contains(got, "chatter") {
		t.Errorf("summary:\n%s", got)
	}
	if !strings.HasPrefix(lastLine(got), "ok") {
		t.Errorf("last line %q is not go's ok line", lastLine(got))
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
