package daemon

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofOffByDefault(t *testing.T) {
	if a, stop := servePprof("", slog.New(slog.DiscardHandler)); a != nil {
		stop()
		t.Fatalf("listening on %v with an empty address", a)
	}
}

func TestPprofServesProfiles(t *testing.T) {
	a, stop := servePprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if a == nil {
		t.Fatal("not listening")
	}
	defer stop()
	resp, err := http.Get("http://" + a.String() + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "heap profile") {
		t.Fatalf("%s: %.200s", resp.Status, b)
	}
}

// TestPprofCPUAndUnknown: a CPU profile of the asked length in pprof's
// format (gzip), and a clear 404 for a profile that does not exist.
func TestPprofCPUAndUnknown(t *testing.T) {
	a, stop := servePprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if a == nil {
		t.Fatal("not listening")
	}
	defer stop()
	resp, err := http.Get("http://" + a.String() + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("CPU profile: %s, %d bytes, not gzip", resp.Status, len(b))
	}
	resp, err = http.Get("http://" + a.String() + "/debug/pprof/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("unknown profile: %s %q", resp.Status, b)
	}
}
