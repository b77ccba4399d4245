package textpages

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"testing"
)

func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if f := bytes.Fields(s.Bytes()); len(f) >= 2 && string(f[0]) == "RssFile:" {
			n, _ := strconv.Atoi(string(f[1]))
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The test binary's own pages: released, RssFile falls; the program goes
// on running (the code faults back in), and a second release works too.
func TestReleaseUnmapsAndTheProgramRunsOn(t *testing.T) {
	before := rssFileKB(t)
	n, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	t.Logf("released %d kB of mappings: RssFile %d -> %d kB", n/1024, before, after)
	if n == 0 || after >= before {
		t.Fatalf("nothing released: %d bytes, RssFile %d -> %d kB", n, before, after)
	}
	if _, err := Release(); err != nil {
		t.Fatal(err)
	}
}
