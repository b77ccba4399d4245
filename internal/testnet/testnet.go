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
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

// Addresses every segment uses. Nodes hold the VIP on lo; routers send
// PTBs about it.
const (
	VIP4 = "198.51.100.10"
	VIP6 = "2001:db8:100::10"
)

// Ports the daemon serves on by default (per namespace, so never shared).
const (
	MetricsPort = 30040
	HealthPort  = 4441 // config.DefaultHealthPort
)

// BuildDaemon builds go-pmtud into a fresh temporary directory, readable
// by any user (the least-privilege test runs it as nobody), and returns the
// binary's path and a function that removes it.
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
	out, err := exec.Command("go", "build", "-o", bin, "github.com/go-pmtud/go-pmtud/cmd/go-pmtud").CombinedOutput()
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building go-pmtud: %v\n%s", err, out)
	}
	return bin, cleanup, nil
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
			ps = append(ps, s.V4[j], s.V6[j])
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

// Daemon is one go-pmtud process in a namespace.
type Daemon struct {
	NS          string
	Cmd         *exec.Cmd
	metricsPort int
	healthPort  int

	log  syncBuffer
	done chan struct{}
	err  error // of Wait, valid once done is closed
}

// StartDaemon starts bin with args in namespace ns. The process is forked
// from a thread inside ns, so it inherits the namespace without `ip netns
// exec` (which would need privileges the least-privilege test drops).
// attr, if not nil, is used as the process's SysProcAttr. The process is
// killed and its log shown (if the test failed) by t.Cleanup.
func StartDaemon(t testing.TB, ns, bin string, args []string, attr *syscall.SysProcAttr) *Daemon {
	t.Helper()
	d := &Daemon{NS: ns, metricsPort: MetricsPort, healthPort: HealthPort, done: make(chan struct{})}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--metrics-port":
			d.metricsPort, _ = strconv.Atoi(args[i+1])
		case "--health-port":
			d.healthPort, _ = strconv.Atoi(args[i+1])
		}
	}
	d.Cmd = exec.Command(bin, args...)
	d.Cmd.Stdout = &d.log
	d.Cmd.Stderr = &d.log
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	// Die with the test binary rather than linger in a namespace.
	attr.Pdeathsig = syscall.SIGKILL
	d.Cmd.SysProcAttr = attr
	if err := netnsutil.DoNamed(ns, d.Cmd.Start); err != nil {
		t.Fatalf("starting go-pmtud in %s: %v", ns, err)
	}
	go func() {
		d.err = d.Cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("%s go-pmtud %s log:\n%s", ns, strings.Join(args, " "), d.Log())
		}
	})
	return d
}

// Log is what the daemon wrote so far.
func (d *Daemon) Log() string { return d.log.String() }

// Pid is the process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to end and returns its exit
// code, or -1 and false if it is still running (or was killed by a signal).
func (d *Daemon) Wait(timeout time.Duration) (code int, exited bool) {
	select {
	case <-d.done:
	case <-time.After(timeout):
		return -1, false
	}
	return d.Cmd.ProcessState.ExitCode(), true
}

// Get does an HTTP GET on 127.0.0.1:port inside the daemon's namespace.
func (d *Daemon) Get(path string, port int) (string, error) {
	return Get(d.NS, path, port)
}

// Ready returns /readyz's body and whether it answered 200.
func (d *Daemon) Ready() (string, bool) {
	body, err := d.Get("/readyz", d.healthPort)
	return body, err == nil
}

// Get does an HTTP GET on 127.0.0.1:port inside namespace ns. The socket is
// created on the thread inside the namespace; an http.Client would dial
// from another goroutine (the root namespace).
func Get(ns, path string, port int) (string, error) {
	var conn net.Conn
	err := netnsutil.DoNamed(ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return string(body), fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return string(body), nil
}

// WaitReady waits until /readyz answers 200, failing the test after timeout
// or if the process exits.
func (d *Daemon) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := d.Get("/readyz", d.healthPort)
		if err == nil {
			return
		}
		if d.Exited() {
			t.Fatalf("%s: go-pmtud exited (%v) before it was ready:\n%s", d.NS, d.err, d.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", d.NS, err, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metrics returns the daemon's gopmtud_* series as "name{labels}" -> value.
func (d *Daemon) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	body, err := d.Get("/metrics", d.metricsPort)
	if err != nil {
		t.Fatalf("%s metrics: %v\n%s", d.NS, err, d.Log())
	}
	return ParseMetrics(body)
}

// ParseMetrics reads gopmtud_* series from a Prometheus text exposition.
func ParseMetrics(body string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gopmtud_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		out[line[:i]] = v
	}
	return out
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

// TablePresent reports whether ns holds the table "inet go-pmtud".
func TablePresent(t testing.TB, ns string) bool { return ListTable(t, ns) != nil }

// syncBuffer is a bytes.Buffer safe for os/exec's copying goroutine and
// readers at the same time, capped so a log flood cannot eat the machine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
