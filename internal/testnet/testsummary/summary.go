package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// maxFailLines bounds what one failed test prints (its last lines).
const maxFailLines = 200

type pkgState struct {
	pass, fail, skip int
	out              []string // package-level lines, printed when it ends
}

type summary struct {
	w       io.Writer
	verbose bool                // print every line as it comes, then the counts
	tests   map[string][]string // output per package+test, until it ends
	pkgs    map[string]*pkgState
	failed  bool
}

// summarize copies the shortened form of r (go test -json, possibly mixed
// with plain lines such as build errors) to w and reports a failure.
func summarize(r io.Reader, w io.Writer, verbose bool) (failed bool) {
	s := &summary{w: w, verbose: verbose, tests: map[string][]string{}, pkgs: map[string]*pkgState{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
			s.plain(line)
			continue
		}
		s.event(e)
	}
	return s.failed
}

// plain is a line that is not JSON: a build error or go's own FAIL line.
func (s *summary) plain(line string) {
	if strings.HasPrefix(line, "FAIL") {
		s.failed = true
	}
	fmt.Fprintln(s.w, line)
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) event(e event) {
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.w, e.Output)
	case e.Action == "build-fail":
		s.failed = true
	case e.Test == "":
		s.packageEvent(e)
	default:
		s.testEvent(e)
	}
}

func (s *summary) testEvent(e event) {
	key := e.Package + "\x00" + e.Test
	if s.verbose && e.Action == "output" {
		fmt.Fprint(s.w, e.Output)
		return
	}
	switch e.Action {
	case "output":
		if !strings.HasPrefix(e.Output, "=== ") {
			s.tests[key] = append(s.tests[key], e.Output)
		}
	case "pass":
		s.pkg(e.Package).pass++
		delete(s.tests, key)
	case "skip":
		s.pkg(e.Package).skip++
		s.flush(key, len(s.tests[key]))
	case "fail":
		s.pkg(e.Package).fail++
		s.failed = true
		s.flush(key, maxFailLines)
	}
}

// flush prints the last max lines a test wrote (its --- line included).
func (s *summary) flush(key string, max int) {
	lines := s.tests[key]
	if len(lines) > max {
		fmt.Fprintf(s.w, "    ... %d earlier lines left out\n", len(lines)-max)
		lines = lines[len(lines)-max:]
	}
	for _, l := range lines {
		fmt.Fprint(s.w, l)
	}
	delete(s.tests, key)
}

func (s *summary) packageEvent(e event) {
	p := s.pkg(e.Package)
	switch e.Action {
	case "output":
		if e.Output != "PASS\n" {
			p.out = append(p.out, e.Output)
		}
	case "fail":
		s.failed = true
		fallthrough
	case "pass", "skip":
		s.closePackage(e.Package, p)
	}
}

// closePackage prints what the package itself wrote (TestMain), its
// counts, and go test's closing line last.
func (s *summary) closePackage(name string, p *pkgState) {
	var closing []string
	for _, l := range p.out {
		if strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "?") {
			closing = append(closing, l)
			continue
		}
		fmt.Fprint(s.w, l)
	}
	if n := p.pass + p.fail + p.skip; n > 0 {
		fmt.Fprintf(s.w, "    %s: %d passed, %d failed, %d skipped\n", name, p.pass, p.fail, p.skip)
	}
	for _, l := range closing {
		fmt.Fprint(s.w, l)
	}
	delete(s.pkgs, name)
}
