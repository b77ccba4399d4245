package kubeapi

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClientTLSTokenFileAndStatus(t *testing.T) {
	var auth []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		if r.URL.Path == "/api/v1/nodes" && r.URL.Query().Get("limit") == "1" {
			io.WriteString(w, `{"items":[]}`)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"kind":"Status","code":403,"reason":"Forbidden","message":"nodes is forbidden"}`)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Server: srv.URL, CAData: ca, TokenFile: tf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	get := func(q map[string][]string) error {
		body, err := c.Get(context.Background(), "/api/v1/nodes", q)
		if err == nil {
			body.Close()
		}
		return err
	}
	if err := get(map[string][]string{"limit": {"1"}}); err != nil {
		t.Fatal(err)
	}
	err = get(nil)
	if se, ok := err.(*StatusError); !ok || se.Code != 403 || se.Reason != "Forbidden" {
		t.Fatalf("got %v, want the 403 Status", err)
	}
	// A rotated token is used once the cached one is old.
	if err := os.WriteFile(tf, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.token.readAt = time.Now().Add(-tokenReread)
	_ = get(nil)
	if want := []string{"Bearer one", "Bearer one", "Bearer two"}; len(auth) != 3 || auth[0] != want[0] || auth[1] != want[1] || auth[2] != want[2] {
		t.Errorf("Authorization headers %q, want %q", auth, want)
	}

	// Without the CA the server is not trusted.
	untrusted, _ := New(Config{Server: srv.URL, Token: "x"})
	if _, err := untrusted.Get(context.Background(), "/api/v1/nodes", nil); err == nil {
		t.Error("server with an unknown CA trusted")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Server: ""}, {Server: "k8s:443"}, {Server: "https://k", CAData: []byte("x")},
		{Server: "https://k", CertData: []byte("x"), KeyData: []byte("y")}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
