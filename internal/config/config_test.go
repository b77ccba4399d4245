package config

import (
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	return Parse(args, func(k string) string { return env[k] }, io.Discard)
}

func TestNamedPeers(t *testing.T) {
	c, err := parse(t, nil, "--peers", "node2=10.0.0.2, node2=fd00::2,10.0.0.3")
	if err != nil || len(c.Peers) != 3 {
		t.Fatalf("peers = %+v, %v", c.Peers, err)
	}
	if c.Peers[0].Name != "node2" || c.Peers[1].Name != "node2" || c.Peers[2].Name != "10.0.0.3" {
		t.Fatalf("names = %q %q %q", c.Peers[0].Name, c.Peers[1].Name, c.Peers[2].Name)
	}
	for _, bad := range []string{"=10.0.0.2", "node2=", "node2=nope"} {
		if _, err := parse(t, nil, "--peers", bad); err == nil {
			t.Errorf("--peers %q accepted", bad)
		}
	}
}

func TestIfaceList(t *testing.T) {
	c, err := parse(t, nil, "--iface", "eth0, eth1")
	if err != nil || !slices.Equal(c.Ifaces, []string{"eth0", "eth1"}) {
		t.Fatalf("--iface eth0,eth1: %q, %v", c.Ifaces, err)
	}
	if _, err := parse(t, nil, "--iface", "eth0,bad/name"); err == nil {
		t.Fatal("an invalid name in the list was accepted")
	}
}

func TestSeedDefaults(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.NFLOGGroup != 33 || c.MetricsPort != 30040 || c.HealthPort != DefaultHealthPort || c.Ifaces != nil {
		t.Fatalf("defaults: group=%d metrics=%d health=%d iface=%q", c.NFLOGGroup, c.MetricsPort, c.HealthPort, c.Ifaces)
	}
	if c.Transport != TransportL2 || c.Firewall != "nftables" || c.Kubernetes != "auto" {
		t.Fatalf("defaults: transport=%s firewall=%s kubernetes=%s", c.Transport, c.Firewall, c.Kubernetes)
	}
}

func TestSeedOptionsParse(t *testing.T) {
	c, err := parse(t, nil, "--peers", "10.0.0.2, 10.0.0.3,fd00::3", "--iface", "eth1", "--nodename", "n1",
		"--nflog-group", "7", "--metrics-port", "9100", "--ttl", "2", "--ignore-networks", "192.0.2.0/24,2001:db8::/32,198.51.100.7")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("fd00::3")}
	if len(c.Peers) != 3 || c.Peers[0].Addr() != want[0] || c.Peers[2].Addr() != want[2] {
		t.Fatalf("peers = %v", c.Peers)
	}
	if !slices.Equal(c.Ifaces, []string{"eth1"}) || c.NodeName != "n1" || c.NFLOGGroup != 7 || c.MetricsPort != 9100 || c.TTL != 2 {
		t.Fatalf("parsed %+v", c)
	}
	if len(c.IgnoreNetworks) != 3 || c.IgnoreNetworks[2] != netip.MustParsePrefix("198.51.100.7/32") {
		t.Fatalf("ignore-networks = %v", c.IgnoreNetworks)
	}
	if len(c.Policy.IgnoreNetworks) != 3 {
		t.Fatal("ignore-networks must reach the policy")
	}
}

func TestTunnelOptions(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TunnelPort != DefaultTunnelPort || c.TunnelDevice != "pmtud0" {
		t.Fatalf("defaults: tunnel port %d, device %q", c.TunnelPort, c.TunnelDevice)
	}
	c, err = parse(t, map[string]string{"PMTUD_TUNNEL_PORT": "31000", "PMTUD_TRANSPORT": "tunnel"}, "--tunnel-device", "gopmtud1", "--tunnel-key-file", "keys")
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != TransportTunnel || c.TunnelPort != 31000 || c.TunnelDevice != "gopmtud1" {
		t.Fatalf("transport %s, tunnel port %d, device %q", c.Transport, c.TunnelPort, c.TunnelDevice)
	}
}

func TestEnvironmentAndFlagPrecedence(t *testing.T) {
	env := map[string]string{"PMTUD_NFLOG_GROUP": "40", "PMTUD_NODENAME": "from-env", "PMTUD_PEERS": "10.1.0.1"}
	c, err := parse(t, env, "--nodename", "from-flag")
	if err != nil {
		t.Fatal(err)
	}
	if c.NFLOGGroup != 40 || c.NodeName != "from-flag" || len(c.Peers) != 1 {
		t.Fatalf("group=%d nodename=%q peers=%v", c.NFLOGGroup, c.NodeName, c.Peers)
	}
	if EnvName("ignore-networks") != "PMTUD_IGNORE_NETWORKS" {
		t.Fatal(EnvName("ignore-networks"))
	}
}

func TestInvalidValuesFailWithOneClearLine(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--peers", "10.0.0.300"}, want: `"10.0.0.300" is not an IP address`},
		{args: []string{"--ignore-networks", "10.0.0.0/33"}, want: `"10.0.0.0/33" is not a CIDR`},
		{args: []string{"--nflog-group", "70000"}, want: "out of range 0-65535"},
		{args: []string{"--nflog-group", "-1"}, want: "invalid value"},
		{args: []string{"--ttl", "0"}, want: "--ttl 0 is out of range 1-255"},
		{args: []string{"--ttl", "256"}, want: "out of range 1-255"},
		{args: []string{"--transport", "carrier-pigeon"}, want: "want one of [broadcast l2 routed tunnel]"},
		{args: []string{"--tunnel-port", "0"}, want: "--tunnel-port 0 is out of range 1-65535"},
		{args: []string{"--tunnel-port", "65536"}, want: "--tunnel-port 65536 is out of range"},
		{env: map[string]string{"PMTUD_TUNNEL_PORT": "x"}, want: "PMTUD_TUNNEL_PORT"},
		{args: []string{"--tunnel-device", "pmtud%d"}, want: "--tunnel-device \"pmtud%d\" is not a valid interface name"},
		{args: []string{"--tunnel-device", "a-name-far-too-long"}, want: "not a valid interface name"},
		{args: []string{"--tunnel-device", ""}, want: "not a valid interface name"},
		{args: []string{"--transport", "tunnel"}, want: "--transport tunnel needs --tunnel-key-file"},
		{args: []string{"--capture-busy-poll", "2s"}, want: "--capture-busy-poll 2s is out of range 0-1s"},
		{args: []string{"--capture-busy-poll", "-1ms"}, want: "out of range 0-1s"},
		{args: []string{"--capture-busy-poll", "10"}, want: "invalid value"},
		{args: []string{"--firewall", "iptables"}, want: "want nftables or none"},
		{args: []string{"--metrics-port", "0"}, want: "--metrics-port 0 is out of range"},
		{args: []string{"--metrics-port", "4441"}, want: "must differ"},
		{args: []string{"--iface", "a/b"}, want: "not a valid interface name"},
		{args: []string{"--ports", "0"}, want: "not a port"},
		{args: []string{"--log-format", "xml"}, want: "want json or text"},
		{args: []string{"stray"}, want: `unexpected argument "stray"`},
		{env: map[string]string{"PMTUD_TTL": "x"}, want: "PMTUD_TTL"},
	}
	for _, tc := range cases {
		_, err := parse(t, tc.env, tc.args...)
		if err == nil {
			t.Errorf("%v %v: no error", tc.args, tc.env)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v %v: error %q, want one line containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestCaptureBusyPoll(t *testing.T) {
	if c, err := parse(t, nil); err != nil || c.CaptureBusyPoll != 0 {
		t.Fatalf("default: %v, %v; want 0 (off)", c.CaptureBusyPoll, err)
	}
	if c, err := parse(t, nil, "--capture-busy-poll", "10ms"); err != nil || c.CaptureBusyPoll != 10*time.Millisecond {
		t.Fatalf("--capture-busy-poll 10ms: %v, %v", c.CaptureBusyPoll, err)
	}
	env := map[string]string{"PMTUD_CAPTURE_BUSY_POLL": "1s"}
	if c, err := parse(t, env); err != nil || c.CaptureBusyPoll != time.Second {
		t.Fatalf("PMTUD_CAPTURE_BUSY_POLL=1s: %v, %v", c.CaptureBusyPoll, err)
	}
}
