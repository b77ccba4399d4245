//go:build linux

// Package testnet is the shared harness of the root tests that run real
// go-pmtud processes (test/relay, test/safety): a router and nodes on one
// bridge, each in its own network namespace, daemons started inside them,
// their metrics read from inside, and PTBs injected from the router.
//
// Everything it creates is removed by t.Cleanup, also when a test fails.
// It never touches the caller's (root) namespace.
package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet/proc"
)

// Addresses every segment uses. Nodes hold the VIP on lo; routers send
// PTBs about it.
const (
	VIP4 = "198.51.100.10"
	VIP6 = "2001:db8:100::10"
)

// Ports the daemon serves on by default (per namespace, so never shared).
const (
	MetricsPort = proc.MetricsPort
	HealthPort  = proc.HealthPort
)

// BuildDaemon builds go-pmtud as the Makefile and the image do (static,
// CGO_ENABLED=0, -trimpath: a cgo build maps the C library too, 1.5 MB of
// resident memory the shipped daemon does not have) into a fresh temporary
// directory, readable by any user (the least-privilege test runs it as
// nobody), and returns the binary's path and a function that removes it.
func BuildDaemon() (string, func(), error) {
	dir, err := os.MkdirTemp("", "pmtud-test-bin")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	bin := filepath.Join(dir, "go-pmtud")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/go-pmtud/go-pmtud/cmd/go-pmtud")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building go-pmtud: %v\n%s", err, out)
	}
	if err := syncFile(bin); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// syncFile writes a fresh binary's pages to disk, so that they are clean,
// as an image's binary is: the kernel cannot reclaim a dirty page, and the
// daemon pages its binary out once ready (internal/textpages).
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// IP runs the ip command and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Segment is routers and nodes on one bridge, each in its own namespace.
// Router i has 10.77.0.(254-i) and fd77::(fe-i); node i has 10.77.0.(i+1)
// and fd77::(i+1), its uplink is eth0 (MTU 9000) and it holds the VIPs on lo.
// Every router routes the VIPs to node 0: "the wrong node".
type Segment struct {
	Prefix  string
	Switch  string
	Routers []string // namespace names
	R4, R6  []string // router addresses
	Nodes   []string
	V4, V6  []string // node addresses
}

// NewSegment creates a segment with the given numbers of nodes and routers,
// under a random namespace prefix starting with prefix (keep it short:
// interface and namespace names are derived from it).
func NewSegment(t testing.TB, prefix string, nodes, routers int) *Segment {
	t.Helper()
	NeedRoot(t)
	s := &Segment{Prefix: fmt.Sprintf("%s%04x", prefix, rand.IntN(0xffff))}
	s.Switch = s.Prefix + "-sw"
	all := []string{s.Switch}
	for i := range routers {
		s.Routers = append(s.Routers, fmt.Sprintf("%s-r%d", s.Prefix, i))
	}
	for i := range nodes {
		s.Nodes = append(s.Nodes, fmt.Sprintf("%s-n%d", s.Prefix, i+1))
	}
	all = append(append(all, s.Routers...), s.Nodes...)
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		IP(t, "netns", "add", ns)
		IP(t, "-n", ns, "link", "set", "lo", "up")
		// Inside the new namespace only: no DAD, so IPv6 neighbour discovery
		// does not wait seconds for tentative link-local addresses.
		for _, k := range []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
			if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", k).CombinedOutput(); err != nil {
				t.Fatalf("sysctl %s in %s: %v %s", k, ns, err, out)
			}
		}
	}
	IP(t, "-n", s.Switch, "link", "add", "br0", "type", "bridge")
	IP(t, "-n", s.Switch, "link", "set", "br0", "up")
	port := 0
	for i, ns := range s.Routers {
		s.R4 = append(s.R4, fmt.Sprintf("10.77.0.%d", 254-i))
		s.R6 = append(s.R6, fmt.Sprintf("fd77::%x", 0xfe-i))
		s.Attach(t, ns, port, s.R4[i], s.R6[i])
		port++
	}
	for i, ns := range s.Nodes {
		s.V4 = append(s.V4, fmt.Sprintf("10.77.0.%d", i+1))
		s.V6 = append(s.V6, fmt.Sprintf("fd77::%d", i+1))
		s.Attach(t, ns, port, s.V4[i], s.V6[i])
		port++
		IP(t, "-n", ns, "addr", "add", VIP4+"/32", "dev", "lo")
		IP(t, "-n", ns, "addr", "add", VIP6+"/128", "dev", "lo", "nodad")
		if len(s.Routers) > 0 {
			IP(t, "-n", ns, "route", "add", "default", "via", s.R4[0])
			IP(t, "-n", ns, "-6", "route", "add", "default", "via", s.R6[0])
		}
	}
	for _, r := range s.Routers {
		if len(s.Nodes) > 0 {
			IP(t, "-n", r, "route", "add", VIP4+"/32", "via", s.V4[0])
			IP(t, "-n", r, "-6", "route", "add", VIP6+"/128", "via", s.V6[0])
		}
	}
	return s
}

// Attach (re)creates the veth pair switch port p<idx> <-> eth0 in ns, with
// the given addresses. Tests that recreate a node's uplink call it again
// after deleting eth0.
func (s *Segment) Attach(t testing.TB, ns string, idx int, addr4, addr6 string) {
	t.Helper()
	s.AttachMAC(t, ns, idx, "", addr4, addr6)
}

// AttachMAC is Attach with a given MAC address for eth0 ("" for a random one).
func (s *Segment) AttachMAC(t testing.TB, ns string, idx int, mac, addr4, addr6 string) {
	t.Helper()
	port := fmt.Sprintf("p%d", idx)
	peer := []string{"name", "eth0"}
	if mac != "" {
		peer = append(peer, "address", mac)
	}
	IP(t, append(append([]string{"-n", s.Switch, "link", "add", port, "mtu", "9000", "type", "veth", "peer"}, peer...), "netns", ns)...)
	IP(t, "-n", s.Switch, "link", "set", port, "master", "br0", "up")
	IP(t, "-n", ns, "link", "set", "eth0", "mtu", "9000", "up")
	IP(t, "-n", ns, "addr", "add", addr4+"/24", "dev", "eth0")
	IP(t, "-n", ns, "addr", "add", addr6+"/64", "dev", "eth0", "nodad")
}

// NodePort is the switch port index of node i, for Attach.
func (s *Segment) NodePort(i int) int { return len(s.Routers) + i }

// PeersOf lists every other node's addresses, both families, as --peers wants.
func (s *Segment) PeersOf(i int) string {
	var ps []string
	for j := range s.Nodes {
		if j != i {
			// Named, so both addresses are one node: one frame per message.
			ps = append(ps, s.Nodes[j]+"="+s.V4[j], s.Nodes[j]+"="+s.V6[j])
		}
	}
	return strings.Join(ps, ",")
}

// Start starts go-pmtud on every node with the given transport, every other
// node as a static peer, debug logs, and extra flags; it waits until each
// is ready.
func (s *Segment) Start(t testing.TB, bin, transport string, extra ...string) []*Daemon {
	t.Helper()
	var ds []*Daemon
	for i, ns := range s.Nodes {
		args := append([]string{"--iface", "eth0", "--transport", transport, "--peers", s.PeersOf(i),
			"--nodename", ns, "--log-format", "text", "--log-level", "debug"}, extra...)
		ds = append(ds, StartDaemon(t, ns, bin, args, nil))
	}
	for _, d := range ds {
		d.WaitReady(t, 10*time.Second)
	}
	return ds
}

// Daemon is one go-pmtud process in a namespace (a proc.Proc bound to a
// test).
type Daemon struct {
	*proc.Proc
	NS string
}

// StartDaemon starts bin with args in namespace ns (see proc.Start). attr,
// if not nil, is used as the process's SysProcAttr. The process is killed
// and its log shown (if the test failed) by t.Cleanup.
func StartDaemon(t testing.TB, ns, bin string, args []string, attr *syscall.SysProcAttr) *Daemon {
	t.Helper()
	p, err := proc.Start(inNS(ns), bin, args, attr)
	if err != nil {
		t.Fatalf("starting go-pmtud in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s go-pmtud %s log:\n%s", ns, strings.Join(args, " "), p.Log())
		}
	})
	return &Daemon{Proc: p, NS: ns}
}

// inNS enters the named namespace.
func inNS(ns string) proc.Do {
	return func(fn func() error) error { return netnsutil.DoNamed(ns, fn) }
}

// Get does an HTTP GET on 127.0.0.1:port inside namespace ns.
func Get(ns, path string, port int) (string, error) { return proc.Get(inNS(ns), path, port) }

// WaitReady waits until /readyz answers 200, failing the test after timeout
// or if the process exits.
func (d *Daemon) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := d.Proc.WaitReady(context.Background(), timeout); err != nil {
		t.Fatalf("%s: %v", d.NS, err)
	}
}

// Metrics returns the daemon's gopmtud_* series as "name{labels}" -> value.
func (d *Daemon) Metrics(t testing.TB) proc.Metrics {
	t.Helper()
	m, err := d.Scrape()
	if err != nil {
		t.Fatalf("%s metrics: %v\n%s", d.NS, err, d.Log())
	}
	return m
}

// ParseMetrics reads gopmtud_* series from a Prometheus text exposition.
func ParseMetrics(body string) proc.Metrics {
	m, _ := proc.ParseMetrics(strings.NewReader(body))
	return m
}

// WaitFor polls cond every 20 ms until it holds, failing the test after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Table is go-pmtud's nftables table in ns as nft would list it, or nil.
type Table struct {
	Chains int
	Rules  int
	Names  []string // the chains' names
}

// ListTable reports go-pmtud's table ("inet go-pmtud") in ns: nil when
// absent, else how many chains and rules it holds.
func ListTable(t testing.TB, ns string) *Table {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name != "go-pmtud" || tb.Family != nftables.TableFamilyINet {
			continue
		}
		out := &Table{}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chains {
			if ch.Table.Name != tb.Name {
				continue
			}
			out.Chains++
			out.Names = append(out.Names, ch.Name)
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			out.Rules += len(rules)
		}
		return out
	}
	return nil
}

// MarkerChain is the chain MarkTable adds.
const MarkerChain = "stale-marker"

// MarkTable adds an empty regular chain MarkerChain to go-pmtud's table in
// ns: a mark only that table instance carries, so a test can tell a table
// replaced by a restarted daemon from the same table reused.
func MarkTable(t testing.TB, ns string) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	c.AddChain(&nftables.Chain{Name: MarkerChain, Table: &nftables.Table{Name: "go-pmtud", Family: nftables.TableFamilyINet}})
	if err := c.Flush(); err != nil {
		t.Fatalf("marking the table in %s: %v", ns, err)
	}
}

// TablePresent reports whether ns holds the table "inet go-pmtud".
func TablePresent(t testing.TB, ns string) bool { return ListTable(t, ns) != nil }
