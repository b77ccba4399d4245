package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestInvalidFlagsExitWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"--peers", "not-an-ip"},
		{"--ignore-networks", "10.0.0.0/99"},
		{"--nflog-group", "65536"},
		{"--ttl", "0"},
		{"--transport", "pigeon"},
	} {
		var stderr bytes.Buffer
		code := run(args, func(string) string { return "" }, &stderr)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		out := strings.TrimSuffix(stderr.String(), "\n")
		if !strings.HasPrefix(out, "go-pmtud: ") || strings.Contains(out, "\n") {
			t.Errorf("%v: stderr %q, want one line starting with go-pmtud:", args, stderr.String())
		}
	}
}

func TestInvalidEnvironmentExitsWithOneLine(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"PMTUD_NFLOG_GROUP": "many"}
	if code := run(nil, func(k string) string { return env[k] }, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "PMTUD_NFLOG_GROUP") {
		t.Fatalf("stderr %q does not name the variable", stderr.String())
	}
}

func TestHelpExitsZeroAndListsSeedOptions(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, func(string) string { return "" }, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, opt := range []string{"--peers", "--iface", "--nodename", "--nflog-group", "--metrics-port", "--ttl", "--ignore-networks"} {
		if !strings.Contains(stderr.String(), opt) {
			t.Errorf("help lacks %s", opt)
		}
	}
}

func TestUnknownInterfaceFailsAtStart(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--iface", "nosuchif0", "--log-format", "text"}, func(string) string { return "" }, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `--iface \"nosuchif0\": no such interface`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// README: bad values exit 2 before anything starts; an unknown interface is
// found by the daemon at start and exits 1 like other runtime failures.
func TestBareKubernetesFlagParses(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--kubernetes", "--kubeconfig", "/nonexistent", "--iface", "nosuchif0", "--log-format", "text"},
		func(string) string { return "" }, &stderr)
	if code != 1 || strings.Contains(stderr.String(), "unexpected argument") || !strings.Contains(stderr.String(), "nosuchif0") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestVersionSubcommandAndFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"--ttl", "3", "-version"}} {
		var stdout, stderr bytes.Buffer
		code, ok := subcommand(args, func(string) string { return "" }, &stdout, &stderr)
		if !ok || code != 0 || !strings.HasPrefix(stdout.String(), "go-pmtud ") || !strings.Contains(stdout.String(), "revision ") {
			t.Errorf("%v: ok=%v code=%d stdout %q", args, ok, code, stdout.String())
		}
	}
	if _, ok := subcommand([]string{"--ttl", "3", "--", "--version"}, func(string) string { return "" }, io.Discard, io.Discard); ok {
		t.Error("--version after -- taken as the flag")
	}
	if _, ok := subcommand([]string{"--peers", "10.0.0.1"}, func(string) string { return "" }, io.Discard, io.Discard); ok {
		t.Error("daemon flags taken as a subcommand")
	}
}

func TestStatusWithoutDaemonFailsWithOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"PMTUD_METRICS_ADDRESS": "127.0.0.1", "PMTUD_METRICS_PORT": "1"}
	code, ok := subcommand([]string{"status", "--timeout", "2s"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if !ok || code != 1 || !strings.HasPrefix(stderr.String(), "go-pmtud status: ") || !strings.Contains(stderr.String(), "127.0.0.1:1") {
		t.Fatalf("ok=%v code=%d stderr %q", ok, code, stderr.String())
	}
}
