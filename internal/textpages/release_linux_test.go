package textpages

import (
	"os"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
)

func rssFileKB(t *testing.T) int {
	t.Helper()
	m, err := benchrate.Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return int(m.File >> 10)
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
