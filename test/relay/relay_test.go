//go:build linux

// Package relay_test runs real go-pmtud processes on a shared segment of
// network namespaces and injects real PTBs: each message must reach every
// peer's NFLOG over each transport, in both families, and the copies must
// not be relayed again.
package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("skipping daemon relay tests: they need root (network namespaces, NFLOG, nftables)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pmtud-relay-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "go-pmtud")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/go-pmtud").CombinedOutput()
	if err != nil {
		fmt.Printf("building go-pmtud: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// segment is a router and three nodes on one bridge, each in its own namespace.
type segment struct {
	prefix string
	nodes  []string // namespace names
	router string
	v4     []string // node addresses
	v6     []string
}

var vip4, vip6 = "198.51.100.10", "2001:db8:100::10"

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newSegment(t *testing.T) *segment {
	t.Helper()
	s := &segment{prefix: fmt.Sprintf("prl%04x", rand.IntN(0xffff))}
	sw := s.prefix + "-sw"
	s.router = s.prefix + "-rt"
	all := []string{sw, s.router}
	for i := 1; i <= 3; i++ {
		all = append(all, fmt.Sprintf("%s-n%d", s.prefix, i))
	}
	s.nodes = all[2:]
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		ip(t, "netns", "add", ns)
		ip(t, "-n", ns, "link", "set", "lo", "up")
		// Inside the new namespace only: no DAD, so IPv6 neighbour discovery
		// does not wait seconds for tentative link-local addresses.
		for _, k := range []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"} {
			if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", k).CombinedOutput(); err != nil {
				t.Fatalf("sysctl %s in %s: %v %s", k, ns, err, out)
			}
		}
	}
	ip(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", sw, "link", "set", "br0", "up")
	attach := func(ns, addr4, addr6 string, idx int) {
		port := fmt.Sprintf("p%d", idx)
		ip(t, "-n", sw, "link", "add", port, "mtu", "9000", "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", ns, "link", "set", "eth0", "mtu", "9000", "up")
		ip(t, "-n", ns, "addr", "add", addr4+"/24", "dev", "eth0")
		ip(t, "-n", ns, "addr", "add", addr6+"/64", "dev", "eth0", "nodad")
	}
	attach(s.router, "10.77.0.254", "fd77::fe", 0)
	for i, ns := range s.nodes {
		s.v4 = append(s.v4, fmt.Sprintf("10.77.0.%d", i+1))
		s.v6 = append(s.v6, fmt.Sprintf("fd77::%d", i+1))
		attach(ns, s.v4[i], s.v6[i], i+1)
		ip(t, "-n", ns, "addr", "add", vip4+"/32", "dev", "lo")
		ip(t, "-n", ns, "addr", "add", vip6+"/128", "dev", "lo", "nodad")
		ip(t, "-n", ns, "route", "add", "default", "via", "10.77.0.254")
		ip(t, "-n", ns, "-6", "route", "add", "default", "via", "fd77::fe")
	}
	// The router sends every PTB for the VIP to node 1: "the wrong node".
	ip(t, "-n", s.router, "route", "add", vip4+"/32", "via", s.v4[0])
	ip(t, "-n", s.router, "-6", "route", "add", vip6+"/128", "via", s.v6[0])
	return s
}

type daemon struct {
	ns     string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (s *segment) start(t *testing.T, transport string, extra ...string) []*daemon {
	t.Helper()
	var ds []*daemon
	for i, ns := range s.nodes {
		var peers []string
		for j := range s.nodes {
			if j != i {
				peers = append(peers, s.v4[j], s.v6[j])
			}
		}
		args := append([]string{"netns", "exec", ns, binary, "--iface", "eth0", "--transport", transport,
			"--peers", strings.Join(peers, ","), "--nodename", ns, "--log-format", "text", "--log-level", "debug"}, extra...)
		d := &daemon{ns: ns, stderr: &bytes.Buffer{}}
		d.cmd = exec.Command("ip", args...)
		d.cmd.Stderr = d.stderr
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
		t.Cleanup(func() {
			d.cmd.Process.Kill()
			d.cmd.Wait()
			if t.Failed() {
				links, _ := exec.Command("ip", "-n", d.ns, "-br", "link").CombinedOutput()
				neigh, _ := exec.Command("ip", "-n", d.ns, "neigh").CombinedOutput()
				t.Logf("%s log:\n%s\nlinks:\n%s\nneighbours:\n%s", d.ns, d.stderr, links, neigh)
			}
		})
	}
	for _, d := range ds {
		waitReady(t, d)
	}
	return ds
}

func (d *daemon) get(path string, port int) (string, error) {
	// The socket must be created on the thread inside the namespace; an
	// http.Client would dial from another goroutine (the root namespace).
	var conn net.Conn
	err := netnsutil.DoNamed(d.ns, func() error {
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

func waitReady(t *testing.T, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.get("/readyz", 30041)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", d.ns, err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metrics returns the daemon's counters as "name{labels}" -> value.
func (d *daemon) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	body, err := d.get("/metrics", 30040)
	if err != nil {
		t.Fatalf("%s metrics: %v", d.ns, err)
	}
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

// inject sends a PTB from the router namespace toward the VIP (routed to node 1).
func (s *segment) inject(t *testing.T, pkt []byte, v6 bool) {
	t.Helper()
	err := netnsutil.DoNamed(s.router, func() error {
		if !v6 {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(vip4).As4()})
		}
		// IPv6 raw sockets do not take a header: send the ICMPv6 body and let
		// the kernel build the header from our source address.
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, pkt[40:], 0, &unix.SockaddrInet6{Addr: netip.MustParseAddr(vip6).As16()})
	})
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEveryTransportReachesEveryPeerOnceAndCopiesAreNotRelayed(t *testing.T) {
	for _, tc := range []struct {
		transport  string
		copyReason string // why a peer drops the copy it receives
		frames     float64
	}{
		{"routed", "from_peer", 2},
		{"l2", "from_peer", 2},
		{"broadcast", "l2_broadcast", 1},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			s := newSegment(t)
			ds := s.start(t, tc.transport)
			for _, fam := range []struct {
				name, router, vip, family string
				v6                        bool
			}{
				{"ipv4", "10.77.0.254", vip4, "ipv4", false},
				{"ipv6", "fd77::fe", vip6, "ipv6", true},
			} {
				pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(fam.router), VIP: netip.MustParseAddr(fam.vip),
					Client: netip.MustParseAddr(map[bool]string{false: "203.0.113.5", true: "2001:db8:2::5"}[fam.v6]),
					MTU:    1400, SrcPort: 80, DstPort: 40000})
				before := make([]map[string]float64, len(ds))
				for i, d := range ds {
					before[i] = d.metrics(t)
				}
				s.inject(t, pkt, fam.v6)

				relayed := `gopmtud_messages_relayed_total{family="` + fam.family + `"}`
				dropped := `gopmtud_packets_dropped_total{reason="` + tc.copyReason + `"}`
				waitFor(t, fam.name+" copies at both peers", func() bool {
					return ds[1].metrics(t)[dropped]-before[1][dropped] >= 1 && ds[2].metrics(t)[dropped]-before[2][dropped] >= 1
				})
				time.Sleep(200 * time.Millisecond) // room for any echo or storm to show
				after := make([]map[string]float64, len(ds))
				for i, d := range ds {
					after[i] = d.metrics(t)
				}
				delta := func(i int, k string) float64 { return after[i][k] - before[i][k] }
				if delta(0, relayed) != 1 {
					t.Errorf("%s: node1 relayed %v messages, want 1", fam.name, delta(0, relayed))
				}
				if got := delta(0, `gopmtud_frames_sent_total{transport="`+tc.transport+`"}`); got != tc.frames {
					t.Errorf("%s: node1 sent %v frames, want %v", fam.name, got, tc.frames)
				}
				if got := delta(0, "gopmtud_packets_received_total"); got != 1 {
					t.Errorf("%s: node1 received %v packets, want 1 (a copy came back)", fam.name, got)
				}
				for i := 1; i < 3; i++ {
					if got := delta(i, "gopmtud_packets_received_total"); got != 1 {
						t.Errorf("%s: node%d received %v packets, want exactly 1 copy", fam.name, i+1, got)
					}
					if got := delta(i, relayed); got != 0 {
						t.Errorf("%s: node%d relayed a relayed copy (%v)", fam.name, i+1, got)
					}
					if got := delta(i, dropped); got != 1 {
						t.Errorf("%s: node%d dropped{%s} = %v, want 1", fam.name, i+1, tc.copyReason, got)
					}
				}
			}
		})
	}
}

func TestFirewallTableAppearsAndDisappearsWithTheDaemon(t *testing.T) {
	s := newSegment(t)
	ns := s.nodes[0]
	cmd := exec.Command("ip", "netns", "exec", ns, binary, "--iface", "eth0", "--peers", s.v4[1], "--log-format", "text")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{ns: ns, cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, d)
	if m := d.metrics(t); m["gopmtud_firewall_rule_up"] != 1 {
		t.Fatalf("firewall_rule_up = %v", m["gopmtud_firewall_rule_up"])
	}
	if !tablePresent(t, ns) {
		t.Fatal("table inet go-pmtud missing while the daemon runs")
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, &stderr)
		}
	case <-ctx.Done():
		t.Fatal("no exit within 2 s of SIGTERM")
	}
	t.Logf("exit 0 %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if tablePresent(t, ns) {
		t.Fatal("table inet go-pmtud left behind after SIGTERM")
	}
}

func tablePresent(t *testing.T, ns string) bool {
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
		if tb.Name == "go-pmtud" && tb.Family == nftables.TableFamilyINet {
			return true
		}
	}
	return false
}
