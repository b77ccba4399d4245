// Package config turns command-line flags and PMTUD_* environment variables
// into a validated Config. It is pure: checks that need the system (does the
// interface exist?) happen in the daemon.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// Transports go-pmtud can relay with (the registered names of package
// transport, named here for defaults and tests).
const (
	TransportL2        = "l2"
	TransportBroadcast = "broadcast"
	TransportRouted    = "routed"
	TransportTunnel    = "tunnel"
)

// Config is everything the daemon needs to know at start.
type Config struct {
	Peers          []peers.Peer // static peers: one per address, merged by name
	Ifaces         []string     // empty: every interface of the default routes, followed
	NodeName       string
	NFLOGGroup     uint16
	MetricsAddress string
	MetricsPort    int
	HealthAddress  string
	HealthPort     int
	TTL            int
	IgnoreNetworks []netip.Prefix
	RelayFor       []netip.Prefix
	Ports          []uint16

	Transport   string
	Firewall    string // "nftables" or "none"
	CaptureRate uint32 // in-kernel pre-limit, packets/s before userspace; 0 = none
	// CaptureBurst is the pre-limit's bucket in packets; 0 = CaptureRate.
	CaptureBurst uint32
	// CaptureSourceRate is the in-kernel pre-limit per router, applied
	// before CaptureRate so that one flooding router cannot spend it all; 0 = none.
	CaptureSourceRate uint32
	// CaptureBuffer is the NFLOG socket receive buffer in bytes.
	CaptureBuffer int
	// CaptureBusyPoll is how long the capture keeps polling its socket
	// after each message before it sleeps again; 0 = off.
	CaptureBusyPoll time.Duration
	DryRun          bool
	Strict          bool
	LogFormat       string
	LogLevel        string

	// TunnelPort is the UDP port of the tunnel transport (send and receive);
	// TunnelDevice the TUN device its receiver injects through.
	TunnelPort   int
	TunnelDevice string
	// TunnelKeyFile holds the tunnel's shared keys (tunnelwire.ParseKeyFile);
	// TunnelInsecure lets the tunnel run without (labs only).
	TunnelKeyFile  string
	TunnelInsecure bool

	Policy policy.Config

	Kubernetes      string // "true", "false" or "auto"
	Kubeconfig      string
	NodeAddressType string
	NodeSelector    string

	PprofAddress string // host:port of the optional pprof listener; empty: off
	// TargetedFanout: with Kubernetes, relay a Local Service's PTBs only to
	// the nodes with its endpoints (Services and EndpointSlices watched).
	TargetedFanout bool
}

// EnvName is the environment variable that sets flag name: PMTUD_ + upper snake case.
func EnvName(flagName string) string {
	return "PMTUD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads args (without the program name) over environment defaults
// (getenv, normally os.Getenv). Flags win over the environment. Usage text
// goes to usage. The error, if any, is one line fit for the operator.
func Parse(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Config{Policy: policy.DefaultConfig()}
	fs := flag.NewFlagSet("go-pmtud", flag.ContinueOnError)
	// Errors come back as one line; the full usage only on -help.
	fs.SetOutput(io.Discard)

	fs.Func("peers", "comma-separated peer node addresses (IPv4 and/or IPv6) to relay to; NAME=ADDR names the node, and addresses under one name are one node (one frame per message), e.g. node2=10.0.0.2,node2=fd00::2", peerList(&c.Peers))
	fs.Func("iface", "comma-separated uplink interfaces where PTBs arrive and l2/broadcast relays leave (empty: every interface of the IPv4 and IPv6 default routes, every multipath nexthop, followed as routes change)", nameList(&c.Ifaces))
	fs.StringVar(&c.NodeName, "nodename", "", "this node's name (Kubernetes: from the downward API); its own Node object is not a peer")
	group := fs.Uint("nflog-group", 33, "NFLOG group the firewall rule logs to (0-65535)")
	fs.StringVar(&c.MetricsAddress, "metrics-address", "", "address to serve /metrics (and /healthz, /readyz, /status) on (empty: every address of the node; the chart passes the node's own address)")
	fs.IntVar(&c.MetricsPort, "metrics-port", 30040, "port to serve Prometheus metrics on (/metrics)")
	fs.StringVar(&c.HealthAddress, "health-address", "", "address to serve /healthz and /readyz on (empty: every address of the node; the chart passes the node's own address)")
	fs.IntVar(&c.HealthPort, "health-port", DefaultHealthPort, "port to serve /healthz and /readyz on (also served on the metrics port)")
	fs.IntVar(&c.TTL, "ttl", 64, "TTL / hop limit of relayed packets (routed transport; 1 keeps relays on the local segment)")
	fs.Func("ignore-networks", "comma-separated CIDRs: PTBs from routers in these are never relayed", prefixList(&c.IgnoreNetworks))
	fs.Func("relay-for", "comma-separated CIDRs: relay only PTBs about packets we sent from these (VIPs, pod and node ranges); empty: any", prefixList(&c.RelayFor))
	fs.Func("ports", "comma-separated ports: relay only PTBs about packets sent from these source ports; empty: any", portList(&c.Ports))

	fs.StringVar(&c.Transport, "transport", TransportL2, "how to relay: l2 (unicast frames to peer MACs, shared L2; reaches pods behind DNAT; needs nothing from the host), broadcast (one L2 broadcast frame), routed (re-addressed to each peer's IP, any fabric), tunnel (the original packet in UDP to each peer's IP, injected there through a TUN device; any fabric, reaches pods behind DNAT)")
	fs.IntVar(&c.TunnelPort, "tunnel-port", DefaultTunnelPort, "UDP port of the tunnel transport: peers send to it and go-pmtud receives on it (every node must use the same)")
	fs.StringVar(&c.TunnelDevice, "tunnel-device", "pmtud0", "TUN device the tunnel transport injects received copies through (created at start, removed on exit)")
	fs.StringVar(&c.TunnelKeyFile, "tunnel-key-file", "", "file of tunnel keys, one hex key (16 to 64 bytes) per line: the first signs, all verify; re-read when it changes. Required by --transport tunnel")
	fs.BoolVar(&c.TunnelInsecure, "tunnel-insecure", false, "run the tunnel without --tunnel-key-file: unsigned datagrams, accepted from any peer address. For labs only: anyone who can forge a peer's address can make this node inject ICMP")
	fs.StringVar(&c.Firewall, "firewall", "nftables", "nftables: install and own the capture rule; none: the operator provides an NFLOG rule")
	captureRate := fs.Uint("capture-rate", 2000, "in-kernel limit on PTBs passed to go-pmtud, packets/s per family (0: no limit)")
	captureBurst := fs.Uint("capture-burst", 0, "burst for --capture-rate, packets (0: the rate)")
	fs.IntVar(&c.CaptureBuffer, "capture-buffer", 4<<20, "NFLOG socket receive buffer, bytes: the backlog a burst can build while go-pmtud catches up (overruns lose messages: see gopmtud_capture_overruns_total)")
	captureSourceRate := fs.Uint("capture-source-rate", 1000, "in-kernel limit per router (outer source address), packets/s, applied before --capture-rate so a flood from one router leaves room for others (0: no limit)")
	fs.DurationVar(&c.CaptureBusyPoll, "capture-busy-poll", 0, "keep polling the NFLOG socket for this long after each PTB instead of sleeping (e.g. 10ms, at most 1s): saves the wake-up of an idle CPU (about 100 µs on some VMs) while PTBs keep coming, at the cost of a busy core meanwhile; nothing while none come (0: off)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "decide and count, but send nothing")
	fs.BoolVar(&c.Strict, "strict", false, "accept only MTUs 576-1499 (IPv4) and 1280-1499 (IPv6), like cloudflare/pmtud")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.PprofAddress, "pprof-address", "", "host:port to serve Go's pprof profiles on (/debug/pprof/); empty: off")

	c.limitFlags(fs)
	c.kubernetesFlags(fs)

	// The environment first, so that flags given on the command line win.
	if err := applyEnv(fs, getenv); err != nil {
		return c, err
	}
	if err := fs.Parse(joinModeArgs(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(usage, fs)
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := c.narrow(*group, *captureRate, *captureBurst, *captureSourceRate); err != nil {
		return c, err
	}
	c.Policy.IgnoreNetworks = c.IgnoreNetworks
	c.Policy.RelayFor = c.RelayFor
	c.Policy.Ports = c.Ports
	return c, c.Validate()
}

// limitFlags registers the duplicate window and the token buckets.
func (c *Config) limitFlags(fs *flag.FlagSet) {
	p := &c.Policy
	fs.DurationVar(&p.DedupWindow, "dedup-window", p.DedupWindow, "drop a PTB identical (router, flow, MTU) to one relayed within this window")
	fs.Float64Var(&p.FlowRate, "flow-rate", p.FlowRate, "relays per second per flow (router + quoted destination)")
	fs.IntVar(&p.FlowBurst, "flow-burst", p.FlowBurst, "burst for --flow-rate")
	fs.Float64Var(&p.SourceRate, "source-rate", p.SourceRate, "relays per second per router")
	fs.IntVar(&p.SourceBurst, "source-burst", p.SourceBurst, "burst for --source-rate")
	fs.Float64Var(&p.GlobalRate, "global-rate", p.GlobalRate, "relays per second in all (each becomes one frame per peer)")
	fs.IntVar(&p.GlobalBurst, "global-burst", p.GlobalBurst, "burst for --global-rate")
	fs.Float64Var(&p.GlobalFrameRate, "global-frame-rate", p.GlobalFrameRate, "frames per second sent in all, one per peer a message goes to (a message whose fan-out does not fit is dropped whole)")
	fs.IntVar(&p.GlobalFrameBurst, "global-frame-burst", p.GlobalFrameBurst, "burst for --global-frame-rate, frames: must hold one full fan-out (peers of a family)")
}

// kubernetesFlags registers the peer discovery from Kubernetes.
func (c *Config) kubernetesFlags(fs *flag.FlagSet) {
	c.Kubernetes = "auto"
	fs.Var(&kubeMode{&c.Kubernetes}, "kubernetes", "discover peers from Kubernetes Node objects: true (also the bare --kubernetes), false or auto (when running in a cluster)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file (empty: in-cluster configuration)")
	fs.StringVar(&c.NodeAddressType, "node-address-type", "InternalIP", "which Node address is a peer's address (InternalIP, ExternalIP, ...)")
	fs.StringVar(&c.NodeSelector, "node-selector", "", "label selector limiting which Nodes are peers")
	fs.BoolVar(&c.TargetedFanout, "targeted-fanout", true, "with Kubernetes: relay PTBs about a Service with externalTrafficPolicy Local only to the nodes with its endpoints (watches Services and EndpointSlices)")
}

// applyEnv sets every flag whose PMTUD_* variable is set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %v", v, EnvName(f.Name), err)
			}
		}
	})
	return envErr
}

// narrow checks the flags parsed as uint and stores them in their fields.
func (c *Config) narrow(group, captureRate, captureBurst, captureSourceRate uint) error {
	if group > 65535 {
		return fmt.Errorf("--nflog-group %d is out of range 0-65535", group)
	}
	for _, v := range []struct {
		name string
		v    uint
		dst  *uint32
	}{{"capture-rate", captureRate, &c.CaptureRate}, {"capture-burst", captureBurst, &c.CaptureBurst},
		{"capture-source-rate", captureSourceRate, &c.CaptureSourceRate}} {
		if v.v > 1<<31 {
			return fmt.Errorf("--%s %d is too large", v.name, v.v)
		}
		*v.dst = uint32(v.v)
	}
	c.NFLOGGroup = uint16(group)
	return nil
}

// Validate checks values that flag parsing alone cannot.
func (c Config) Validate() error {
	// The transports are whatever package transport registered: adding one
	// is its file and its Kind, nothing here.
	if _, err := transport.Lookup(c.Transport); err != nil {
		return fmt.Errorf("--transport: %v", err)
	}
	switch c.Firewall {
	case "nftables", "none":
	default:
		return fmt.Errorf("--firewall %q: want nftables or none", c.Firewall)
	}
	switch c.Kubernetes {
	case "true", "false", "auto":
	default:
		return fmt.Errorf("--kubernetes %q: want true, false or auto", c.Kubernetes)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return fmt.Errorf("--log-format %q: want json or text", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.CaptureBuffer < 4096 || c.CaptureBuffer > 1<<30 {
		return fmt.Errorf("--capture-buffer %d is out of range 4096-%d", c.CaptureBuffer, 1<<30)
	}
	if c.CaptureBusyPoll < 0 || c.CaptureBusyPoll > capture.MaxBusyPoll {
		return fmt.Errorf("--capture-busy-poll %v is out of range 0-%v", c.CaptureBusyPoll, capture.MaxBusyPoll)
	}
	if c.TTL < 1 || c.TTL > 255 {
		return fmt.Errorf("--ttl %d is out of range 1-255", c.TTL)
	}
	for _, port := range []struct {
		name string
		v    int
	}{{"--metrics-port", c.MetricsPort}, {"--health-port", c.HealthPort}, {"--tunnel-port", c.TunnelPort}} {
		if port.v < 1 || port.v > 65535 {
			return fmt.Errorf("%s %d is out of range 1-65535", port.name, port.v)
		}
	}
	if c.MetricsPort == c.HealthPort && c.MetricsAddress == c.HealthAddress {
		return errors.New("--metrics-port and --health-port must differ")
	}
	for _, iface := range c.Ifaces {
		if len(iface) > 15 || strings.ContainsAny(iface, "/ \t*") {
			return fmt.Errorf("--iface %q is not a valid interface name", iface)
		}
	}
	// The kernel would read a % in a TUN name as a template (pmtud%d).
	if c.TunnelDevice == "" || len(c.TunnelDevice) > 15 || strings.ContainsAny(c.TunnelDevice, "/ \t%") {
		return fmt.Errorf("--tunnel-device %q is not a valid interface name", c.TunnelDevice)
	}
	if c.Transport == TransportTunnel && c.TunnelKeyFile == "" && !c.TunnelInsecure {
		return errors.New("--transport tunnel needs --tunnel-key-file (a file of hex keys; --tunnel-insecure only in a lab)")
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("rate limits: %v", err)
	}
	return nil
}

// peerList parses ADDR or NAME=ADDR entries.
func peerList(dst *[]peers.Peer) func(string) error {
	return func(s string) error {
		*dst = nil
		for _, f := range splitList(s) {
			name, addr, named := strings.Cut(f, "=")
			if !named {
				name, addr = "", f
			}
			a, err := netip.ParseAddr(strings.TrimSpace(addr))
			if err != nil || (named && strings.TrimSpace(name) == "") {
				return fmt.Errorf("%q is not an IP address or NAME=ADDRESS", f)
			}
			p := peers.PeerAt(a)
			if named {
				p.Name = strings.TrimSpace(name)
			}
			*dst = append(*dst, p)
		}
		return nil
	}
}

func prefixList(dst *[]netip.Prefix) func(string) error {
	return func(s string) error {
		*dst = nil
		for _, f := range splitList(s) {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				// A bare address is a host route: operators write it often enough.
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return fmt.Errorf("%q is not a CIDR", f)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			*dst = append(*dst, p.Masked())
		}
		return nil
	}
}

func portList(dst *[]uint16) func(string) error {
	return func(s string) error {
		*dst = nil
		for _, f := range splitList(s) {
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil || n == 0 {
				return fmt.Errorf("%q is not a port (1-65535)", f)
			}
			*dst = append(*dst, uint16(n))
		}
		return nil
	}
}

func nameList(dst *[]string) func(string) error {
	return func(s string) error {
		*dst = splitList(s)
		return nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
