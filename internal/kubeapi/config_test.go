package kubeapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseKubeconfigFilesAndData(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "ca.crt", "CA")
	write(t, dir, "c.crt", "CERT")
	write(t, dir, "c.key", "KEY")
	kc := `apiVersion: v1
kind: Config
current-context: two
contexts:
- name: one
  context: {cluster: a, user: u1}
- name: two
  context: {cluster: b, user: u2}
clusters:
- name: a
  cluster: {server: "https://a:1", certificate-authority-data: Q0E=}
- name: b
  cluster:
    server: https://b:6443
    certificate-authority: ca.crt
    tls-server-name: kubernetes
users:
- name: u1
  user: {token: t1}
- name: u2
  user:
    client-certificate: c.crt
    client-key: ` + filepath.Join(dir, "c.key") + `
    tokenFile: tok
`
	cfg, err := ParseKubeconfig([]byte(kc), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != "https://b:6443" || string(cfg.CAData) != "CA" || cfg.ServerName != "kubernetes" ||
		string(cfg.CertData) != "CERT" || string(cfg.KeyData) != "KEY" || cfg.TokenFile != filepath.Join(dir, "tok") {
		t.Errorf("got %+v", cfg)
	}
	cfg, err = ParseKubeconfig([]byte(strings.Replace(kc, "current-context: two", "current-context: one", 1)), dir)
	if err != nil || cfg.Server != "https://a:1" || string(cfg.CAData) != "CA" || cfg.Token != "t1" {
		t.Errorf("context one: %+v %v", cfg, err)
	}
}

func TestParseKubeconfigRefuses(t *testing.T) {
	base := `current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://k"}}]
`
	for name, kc := range map[string]string{
		"no context":      `clusters: []`,
		"unknown context": strings.Replace(base, "current-context: c", "current-context: x", 1),
		"no cluster":      strings.Replace(base, "cluster: k,", "cluster: x,", 1),
		"exec plugin":     base + "users: [{name: u, user: {exec: {command: aws}}}]",
		"basic auth":      base + "users: [{name: u, user: {username: a, password: b}}]",
		"cert no key":     base + "users: [{name: u, user: {client-certificate-data: Q0E=}}]",
		"missing CA file": strings.Replace(base, `server: "https://k"`, `server: "https://k", certificate-authority: /nonexistent`, 1),
		"not yaml":        "{",
	} {
		if _, err := ParseKubeconfig([]byte(kc), t.TempDir()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseKubeconfig([]byte(base), t.TempDir()); err != nil {
		t.Errorf("anonymous user refused: %v", err)
	}
}

func TestInClusterConfig(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
	if _, err := InClusterConfig(func(k string) string { return env[k] }, dir); err == nil {
		t.Error("accepted without the service account files")
	}
	write(t, dir, "ca.crt", "CA")
	write(t, dir, "token", "T")
	cfg, err := InClusterConfig(func(k string) string { return env[k] }, dir)
	if err != nil || cfg.Server != "https://[fd00::1]:443" || string(cfg.CAData) != "CA" || cfg.TokenFile != filepath.Join(dir, "token") {
		t.Errorf("got %+v %v", cfg, err)
	}
	if _, err := InClusterConfig(func(string) string { return "" }, dir); err == nil {
		t.Error("accepted without the environment")
	}
}

func TestLoadKubeconfigFile(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "config", `current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://k:1"}}]
users: [{name: u, user: {token: x}}]
`)
	cfg, err := Load(p)
	if err != nil || cfg.Server != "https://k:1" || cfg.Token != "x" {
		t.Errorf("got %+v %v", cfg, err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
