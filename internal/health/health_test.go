package health

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestReadinessFailsWithDetailWhileLivenessHolds(t *testing.T) {
	c := New()
	captureErr := errors.New("nflog socket closed")
	c.Live("process", func() error { return nil })
	c.Ready("capture", func() error { return captureErr })
	c.Ready("firewall", func() error { return nil })
	h := c.Handler()

	if code, body := get(t, h, "/healthz"); code != 200 || !strings.Contains(body, "[+] process ok") {
		t.Fatalf("healthz = %d %q", code, body)
	}
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz = %d, want 503", code)
	}
	if !strings.Contains(body, "[-] capture: nflog socket closed") || !strings.Contains(body, "[+] firewall ok") {
		t.Fatalf("readyz body lacks detail: %q", body)
	}
	captureErr = nil
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("readyz after recovery = %d", code)
	}
}

func TestDetailIsShownWhileTheCheckPasses(t *testing.T) {
	c := New()
	c.ReadyDetail("kubernetes", func() error { return nil }, func() string { return "API unreachable, relaying to the 3 last known peers" })
	code, body := get(t, c.Handler(), "/readyz")
	if code != 200 || !strings.Contains(body, "[+] kubernetes ok: API unreachable, relaying to the 3 last known peers") {
		t.Fatalf("readyz = %d %q", code, body)
	}
}

func TestReadyResultsMatchReadyz(t *testing.T) {
	c := New()
	c.ReadyDetail("capture", func() error { return nil }, func() string { return "group 33" })
	c.Ready("firewall", func() error { return errors.New("table gone") })
	ok, rs := c.ReadyResults()
	if ok || len(rs) != 2 || rs[0].Name != "capture" || !rs[0].OK || rs[0].Detail != "group 33" ||
		rs[1].OK || rs[1].Detail != "table gone" {
		t.Fatalf("ok=%v %+v", ok, rs)
	}
}
