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
