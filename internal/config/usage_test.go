package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/transport"
)

func help(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := Parse([]string{"--help"}, func(string) string { return "" }, &b); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	return b.String()
}

func TestHelpPrintsDoubleDashFlagsWithTheirVariables(t *testing.T) {
	out := help(t)
	for _, want := range []string{"--peers", "--nflog-group uint", "[PMTUD_NFLOG_GROUP]", "(default 33)", "--metrics-port int",
		"(default 30040)", "--kubernetes[=true|false|auto]", "(default auto)", "--dry-run   [PMTUD_DRY_RUN]"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
			t.Errorf("single-dash flag in help: %q", line)
		}
	}
}

func TestHelpGroupsEveryFlagByConcern(t *testing.T) {
	out := help(t)
	last := -1
	for _, g := range helpGroups {
		i := strings.Index(out, "\n"+g.title+":\n")
		if i < 0 || i < last {
			t.Fatalf("group %q missing or out of order", g.title)
		}
		last = i
	}
	if strings.Contains(out, "\n"+otherGroup+":\n") {
		t.Fatalf("some flag has no group:\n%s", out[strings.Index(out, otherGroup):])
	}
	checks := map[string]string{"capture-rate": "Capture", "tunnel-port": "Tunnel", "global-burst": "Limits",
		"kubeconfig": "Kubernetes", "health-address": "Observability", "relay-for": "Relay", "tunnel-key-file": "Tunnel"}
	for name, prefix := range checks {
		if !strings.HasPrefix(groupOf(name), prefix) {
			t.Errorf("%s in %q, want %s", name, groupOf(name), prefix)
		}
	}
}

func TestKubernetesAcceptsBareFormAndValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "auto"},
		{[]string{"--kubernetes", "--kubeconfig", "/k"}, nil, "true"},
		{[]string{"--kubernetes"}, nil, "true"},
		{[]string{"--kubernetes=false"}, nil, "false"},
		{[]string{"--kubernetes", "false"}, nil, "false"},
		{[]string{"--kubernetes", "auto", "--ttl", "3"}, nil, "auto"},
		{[]string{"-kubernetes", "true"}, nil, "true"},
		{nil, map[string]string{"PMTUD_KUBERNETES": "false"}, "false"},
		{[]string{"--kubernetes"}, map[string]string{"PMTUD_KUBERNETES": "false"}, "true"},
	} {
		c, err := parse(t, tc.env, tc.args...)
		if err != nil || c.Kubernetes != tc.want {
			t.Errorf("%v %v: kubernetes=%q err=%v, want %q", tc.args, tc.env, c.Kubernetes, err, tc.want)
		}
	}
	if _, err := parse(t, nil, "--kubernetes=maybe"); err == nil {
		t.Error("--kubernetes=maybe accepted")
	}
	if _, err := parse(t, nil, "--kubernetes", "maybe"); err == nil {
		t.Error("--kubernetes maybe accepted")
	}
}

func TestPortDefaultsOutsideTheNodePortRange(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]int{"health": c.HealthPort, "tunnel": c.TunnelPort, "chart metrics": ChartMetricsPort} {
		if p >= 30000 && p <= 32767 {
			t.Errorf("%s port %d is in the NodePort range", name, p)
		}
		if p >= 32768 {
			t.Errorf("%s port %d is in the ephemeral range", name, p)
		}
	}
	if c.MetricsPort != 30040 {
		t.Errorf("--metrics-port default %d, the seed's is 30040", c.MetricsPort)
	}
	if transport.DefaultTunnelPort != DefaultTunnelPort {
		t.Errorf("transport default %d != config default %d", transport.DefaultTunnelPort, DefaultTunnelPort)
	}
}
