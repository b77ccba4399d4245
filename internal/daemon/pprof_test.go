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

// pprofGetter starts the pprof listener on a free port and returns a GET
// of a path on it (status code and body).
func pprofGetter(t *testing.T) func(path string) (int, []byte) {
	t.Helper()
	a, stop := servePprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if a == nil {
		t.Fatal("not listening")
	}
	t.Cleanup(stop)
	return func(path string) (int, []byte) {
		resp, err := http.Get("http://" + a.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
}

func TestPprofServesProfiles(t *testing.T) {
	get := pprofGetter(t)
	if code, b := get("/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(string(b), "heap profile") {
		t.Fatalf("%d: %.200s", code, b)
	}
}

// TestPprofCPUAndUnknown: a CPU profile of the asked length in pprof's
// format (gzip), and a clear 404 for a profile that does not exist.
func TestPprofCPUAndUnknown(t *testing.T) {
	get := pprofGetter(t)
	if code, b := get("/debug/pprof/profile?seconds=1"); code != 200 || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("CPU profile: %d, %d bytes, not gzip", code, len(b))
	}
	if code, b := get("/debug/pprof/nosuch"); code != http.StatusNotFound || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("unknown profile: %d %q", code, b)
	}
}
