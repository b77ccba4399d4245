package main

import (
	"bytes"
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
	if code := run([]string{"-help"}, func(string) string { return "" }, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, opt := range []string{"-peers", "-iface", "-nodename", "-nflog-group", "-metrics-port", "-ttl", "-ignore-networks"} {
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
