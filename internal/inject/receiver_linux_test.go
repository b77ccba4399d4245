//go:build linux

package inject

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// The test lab: two namespaces on one veth pair, nothing linked to the
// root namespace.
//
//	S (a peer)   eth0 10.88.0.1 fd88::1, and 10.88.0.9 fd88::9 (not a peer)
//	R (receiver) eth0 10.88.0.2 fd88::2; the VIP on lo; default route via
//	             10.88.0.254 / fd88::fe, the "router" (never answers)
var (
	vip4, vip6       = netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:100::10")
	router4, router6 = netip.MustParseAddr("10.88.0.254"), netip.MustParseAddr("fd88::fe")
	stranger4        = netip.MustParseAddr("10.88.0.9")
	stranger6        = netip.MustParseAddr("fd88::9")
)

const testPort = 30999

type testLab struct {
	s, r string
}

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func in(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netnsutil.DoNamed(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// newTestLab builds the lab; sysctls (key=value, namespace R) are set
// before anything else, as a distribution's defaults would be.
func newTestLab(t *testing.T, sysctls ...string) *testLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, /dev/net/tun)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	p := "pmtudinj-" + hex.EncodeToString(rnd[:])
	l := &testLab{s: p + "-s", r: p + "-r"}
	for _, ns := range []string{l.s, l.r} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	for _, kv := range sysctls {
		k, v, _ := strings.Cut(kv, "=")
		writeSysctl(t, l.r, k, v)
	}
	ip(t, "-n", l.s, "link", "add", "eth0", "mtu", "9000", "type", "veth", "peer", "name", "eth0", "mtu", "9000", "netns", l.r)
	for ns, n := range map[string]string{l.s: "1", l.r: "2"} {
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "addr", "add", "10.88.0."+n+"/24", "dev", "eth0")
		ip(t, "-n", ns, "addr", "add", "fd88::"+n+"/64", "dev", "eth0", "nodad")
	}
	ip(t, "-n", l.s, "addr", "add", stranger4.String()+"/24", "dev", "eth0")
	ip(t, "-n", l.s, "addr", "add", stranger6.String()+"/64", "dev", "eth0", "nodad")
	ip(t, "-n", l.r, "addr", "add", vip4.String()+"/32", "dev", "lo")
	ip(t, "-n", l.r, "addr", "add", vip6.String()+"/128", "dev", "lo", "nodad")
	ip(t, "-n", l.r, "route", "add", "default", "via", router4.String())
	ip(t, "-n", l.r, "-6", "route", "add", "default", "via", router6.String())
	return l
}

func writeSysctl(t *testing.T, ns, key, value string) {
	t.Helper()
	in(t, ns, func() error { return os.WriteFile(sysctlPath(key), []byte(value), 0o644) })
}

func readSysctlIn(t *testing.T, ns, key string) string {
	t.Helper()
	var v string
	in(t, ns, func() error {
		var err error
		v, err = readSysctl(key)
		return err
	})
	return v
}

// receiver opens a Receiver in R that knows S's first addresses as peers,
// runs it, and returns it with its metrics registry.
func (l *testLab) receiver(t *testing.T) (*Receiver, *expo.Registry) {
	t.Helper()
	reg := expo.NewRegistry()
	var r *Receiver
	in(t, l.r, func() error {
		var err error
		r, err = Open(Config{Port: testPort, Peer: testPeer, Keys: testKeys,
			Limits: ptb.DefaultLimits(), Registerer: reg})
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		r.Close()
	})
	for i := 0; i < 100 && r.Err() != nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("receiver not working: %v", err)
	}
	return r, reg
}

func noPeer(netip.Addr) (string, bool) { return "", false }

// send sends one datagram from S, from address src, to R's tunnel port.
func (l *testLab) send(t *testing.T, src netip.Addr, d []byte) {
	t.Helper()
	dst := netip.MustParseAddr("10.88.0.2")
	if src.Is6() {
		dst = netip.MustParseAddr("fd88::2")
	}
	in(t, l.s, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteToUDPAddrPort(d, netip.AddrPortFrom(dst, testPort))
		return err
	})
}

func count(t *testing.T, reg *expo.Registry, res Result) float64 {
	t.Helper()
	v, ok := reg.Value("gopmtud_tunnel_received_total", "result", res.String())
	if !ok {
		t.Fatalf("no gopmtud_tunnel_received_total{result=%q}", res)
	}
	return v
}

func waitCount(t *testing.T, reg *expo.Registry, res Result, want float64) {
	t.Helper()
	for i := 0; i < 150; i++ {
		if count(t, reg, res) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("tunnel_received_total{result=%q} = %v, want %v", res, count(t, reg, res), want)
}

// pmtuSocket is a connected UDP socket VIP:80 -> client:port in R with
// path-MTU discovery on, like a service answering a client.
type pmtuSocket struct{ fd, level, opt int }

func openPMTUSocket(t *testing.T, ns string, client netip.Addr, port int) *pmtuSocket {
	t.Helper()
	local := vip6
	if client.Is4() {
		local = vip4
	}
	return openPMTUSocketFrom(t, ns, local, client, port)
}

// openPMTUSocketFrom is openPMTUSocket from local:80 (a VIP, or a pod's address).
func openPMTUSocketFrom(t *testing.T, ns string, local, client netip.Addr, port int) *pmtuSocket {
	t.Helper()
	s := &pmtuSocket{fd: -1}
	family, discover, do := unix.AF_INET6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO
	s.level, s.opt = unix.IPPROTO_IPV6, unix.IPV6_MTU
	var from, to unix.Sockaddr = &unix.SockaddrInet6{Port: 80, Addr: local.As16()}, &unix.SockaddrInet6{Port: port, Addr: client.As16()}
	if client.Is4() {
		family, discover, do = unix.AF_INET, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO
		s.level, s.opt = unix.IPPROTO_IP, unix.IP_MTU
		from, to = &unix.SockaddrInet4{Port: 80, Addr: local.As4()}, &unix.SockaddrInet4{Port: port, Addr: client.As4()}
	}
	in(t, ns, func() error {
		var err error
		if s.fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err = unix.SetsockoptInt(s.fd, s.level, discover, do); err != nil {
			return err
		}
		// Several sockets on port 80, each connected to its own client.
		if err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err = unix.Bind(s.fd, from); err != nil {
			return err
		}
		return unix.Connect(s.fd, to)
	})
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *pmtuSocket) mtu(t *testing.T) int {
	t.Helper()
	v, err := unix.GetsockoptInt(s.fd, s.level, s.opt)
	if err != nil {
		t.Fatalf("getsockopt(IP_MTU): %v", err)
	}
	return v
}

// waitMTU polls until the path MTU is want or 1 s passes; returns the last value.
func (s *pmtuSocket) waitMTU(t *testing.T, want int) int {
	t.Helper()
	got := 0
	for i := 0; i < 50; i++ {
		if got = s.mtu(t); got == want {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got
}

// ptbFor builds a PTB from the router to the VIP about VIP:80 -> client:port (UDP).
func ptbFor(client netip.Addr, port uint16, mtu uint32) []byte {
	router, vip := router4, vip4
	if client.Is6() {
		router, vip = router6, vip6
	}
	return ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: mtu, Proto: 17, SrcPort: 80, DstPort: port})
}

var clientN = 0

func nextClient(f uint8) (netip.Addr, int) {
	clientN++
	if f == 4 {
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(clientN)}), 40000 + clientN
	}
	return netip.MustParseAddr("2001:db8:2::" + strconv.Itoa(clientN)), 40000 + clientN
}

// TestReceiverInjects: a PTB tunnelled from a peer reaches R's kernel as
// if it had arrived from the network (a socket in R learns the MTU); from
// a non-peer address, with a bad header or a payload that is no PTB,
// nothing is injected and each is counted under its result.
func TestReceiverInjects(t *testing.T) {
	l := newTestLab(t)
	r, reg := l.receiver(t)

	out := ip(t, "-n", l.r, "addr", "show", "dev", DefaultDevice)
	if !strings.Contains(out, "UP") || strings.Contains(out, "inet6") ||
		strings.Count(out, "inet ") != 1 || !strings.Contains(out, "inet 192.0.0.8/32 scope host") {
		t.Errorf("%s should be up with only 192.0.0.8/32 scope host:\n%s", DefaultDevice, out)
	}
	if got := readSysctlIn(t, l.r, "net.ipv4.conf."+DefaultDevice+".rp_filter"); got != "0" {
		t.Errorf("rp_filter on %s = %s, want 0", DefaultDevice, got)
	}
	if r.IfIndex() == 0 || !strings.Contains(r.Detail(), "udp port 30999") || strings.Contains(r.Detail(), "rp_filter") {
		t.Errorf("IfIndex %d, Detail %q", r.IfIndex(), r.Detail())
	}

	injected := 0.0
	for _, fam := range []struct {
		f              uint8
		peer, stranger netip.Addr
		name           string
	}{
		{4, netip.MustParseAddr("10.88.0.1"), stranger4, "ipv4"},
		{6, netip.MustParseAddr("fd88::1"), stranger6, "ipv6"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// From a non-peer: counted, not injected.
			c, port := nextClient(fam.f)
			s := openPMTUSocket(t, l.r, c, port)
			if got := s.mtu(t); got != 9000 {
				t.Fatalf("MTU before = %d, want 9000", got)
			}
			notPeer := count(t, reg, NotPeer)
			l.send(t, fam.stranger, datagram(fam.f, ptbFor(c, uint16(port), 1400)))
			waitCount(t, reg, NotPeer, notPeer+1)
			if got := s.waitMTU(t, 1400); got != 9000 {
				t.Errorf("a non-peer's datagram changed the MTU to %d", got)
			}

			// From the peer: injected, and R's kernel applies it.
			l.send(t, fam.peer, datagram(fam.f, ptbFor(c, uint16(port), 1400)))
			injected++
			waitCount(t, reg, Injected, injected)
			if got := s.waitMTU(t, 1400); got != 1400 {
				t.Errorf("MTU after the injected PTB = %d, want 1400", got)
			}

			// Garbage and non-PTBs from the peer.
			badHeader, badPTB := count(t, reg, BadHeader), count(t, reg, BadPTB)
			l.send(t, fam.peer, []byte("not a tunnel datagram at all, but long enough"))
			notPTB := ptbFor(c, uint16(port), 1400)
			notPTB[len(notPTB)-1] ^= 0xff // checksum no longer verifies
			l.send(t, fam.peer, datagram(fam.f, notPTB))
			waitCount(t, reg, BadHeader, badHeader+1)
			waitCount(t, reg, BadPTB, badPTB+1)
			if got := count(t, reg, Injected); got != injected {
				t.Errorf("injected = %v, want %v", got, injected)
			}
		})
	}
	if got := count(t, reg, InjectError); got != 0 {
		t.Errorf("inject_error = %v", got)
	}
}

// openUnread opens a receiver (insecure, no peers) in namespace ns and
// does not run it: nothing reads its socket.
func openUnread(t *testing.T, ns string) *Receiver {
	t.Helper()
	var r *Receiver
	in(t, ns, func() error {
		var err error
		r, err = Open(Config{Port: testPort, Peer: noPeer, Insecure: true})
		return err
	})
	return r
}

// TestReceiverDeviceLifetime: the device exists while the receiver is open
// and is gone after Close; a second receiver cannot take the same name.
func TestReceiverDeviceLifetime(t *testing.T) {
	l := newTestLab(t)
	r := openUnread(t, l.r)
	in(t, l.r, func() error {
		r2, err := Open(Config{Port: testPort + 1, Peer: noPeer, Insecure: true})
		if err == nil {
			r2.Close()
			t.Error("a second receiver opened the same device")
		} else if !strings.Contains(err.Error(), "already exists") {
			t.Errorf("second receiver: %v", err)
		}
		return nil
	})
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Err before Run = %v", err)
	}
	// The receive buffer is ours, past net.core.rmem_max (the kernel
	// reports twice what was set).
	raw, _ := r.conn.SyscallConn()
	raw.Control(func(fd uintptr) {
		if n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil || n < ReceiveBuffer {
			t.Errorf("receive buffer %d (%v), want at least %d", n, err, ReceiveBuffer)
		}
	})
	r.Close()
	if out, err := exec.Command("ip", "-n", l.r, "link", "show", DefaultDevice).CombinedOutput(); err == nil {
		t.Errorf("%s still there after Close:\n%s", DefaultDevice, out)
	}
}

// TestReversePathFilter records what the receiver must do about the
// kernel's reverse-path filter (Linux 6.18, fib_validate_source; the whole
// table is TestReversePathFilterMatrix). The effective value is
// max(all, device):
//   - a distribution default of default.rp_filter=2 (systemd) is
//     overridden by our per-device 0: IPv4 injection works;
//   - all.rp_filter=2 (Ubuntu's /etc/sysctl.d/10-network-security.conf)
//     cannot be overridden per device, but loose mode passes on a device
//     with an address: ours has the RFC 7600 dummy one, IPv4 works and
//     Detail is clean;
//   - all.rp_filter=1 (strict) drops every IPv4 copy (the kernel's
//     IPReversePathFilter counter rises) and Detail says so; IPv6 has no
//     reverse-path filter and still works. Once the operator sets all=2,
//     Detail clears and IPv4 works, without a restart.
func TestReversePathFilter(t *testing.T) {
	delivered := func(t *testing.T, l *testLab, reg *expo.Registry, injected float64, f uint8) int {
		t.Helper()
		c, port := nextClient(f)
		s := openPMTUSocket(t, l.r, c, port)
		peer := netip.MustParseAddr("10.88.0.1")
		if f == 6 {
			peer = netip.MustParseAddr("fd88::1")
		}
		l.send(t, peer, datagram(f, ptbFor(c, uint16(port), 1400)))
		waitCount(t, reg, Injected, injected)
		return s.waitMTU(t, 1400)
	}
	for _, sysctl := range []string{"net.ipv4.conf.default.rp_filter=2", "net.ipv4.conf.all.rp_filter=2"} {
		t.Run(strings.TrimPrefix(sysctl, "net.ipv4.conf."), func(t *testing.T) {
			l := newTestLab(t, sysctl)
			r, reg := l.receiver(t)
			if strings.Contains(r.Detail(), "rp_filter") {
				t.Errorf("Detail %q", r.Detail())
			}
			before := rpFilterDrops(t, l.r)
			if got := delivered(t, l, reg, 1, 4); got != 1400 {
				t.Errorf("IPv4 MTU = %d, want 1400", got)
			}
			if after := rpFilterDrops(t, l.r); after != before {
				t.Errorf("IPReversePathFilter %d -> %d", before, after)
			}
		})
	}
	t.Run("all.rp_filter=1", func(t *testing.T) {
		l := newTestLab(t, "net.ipv4.conf.all.rp_filter=1")
		r, reg := l.receiver(t)
		if d := r.Detail(); !strings.Contains(d, "net.ipv4.conf.all.rp_filter=1 (want 2 or 0") {
			t.Errorf("Detail %q does not name the setting", d)
		}
		before := rpFilterDrops(t, l.r)
		if got := delivered(t, l, reg, 1, 4); got != 9000 {
			t.Errorf("IPv4 MTU = %d with all.rp_filter=1: the kernel rule changed, update the receiver and docs", got)
		}
		if after := rpFilterDrops(t, l.r); after != before+1 {
			t.Errorf("IPReversePathFilter %d -> %d, want +1", before, after)
		}
		if got := delivered(t, l, reg, 2, 6); got != 1400 {
			t.Errorf("IPv6 MTU = %d, want 1400", got)
		}

		// The operator's fix shows without a restart, and works.
		writeSysctl(t, l.r, "net.ipv4.conf.all.rp_filter", "2")
		if strings.Contains(r.Detail(), "rp_filter") {
			t.Errorf("Detail after all.rp_filter=2: %q", r.Detail())
		}
		if got := delivered(t, l, reg, 3, 4); got != 1400 {
			t.Errorf("IPv4 MTU after all.rp_filter=2: %d, want 1400", got)
		}
	})
}

// TestDummyAddressChangesNoRouting: the dummy address on the device adds
// only its own local route, is never picked as a source (the node's only
// other interface here has no IPv4 address, so a global-scope 192.0.0.8
// would be picked), and goes with the device.
func TestDummyAddressChangesNoRouting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, /dev/net/tun)")
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	ns := "pmtudinj-" + hex.EncodeToString(rnd[:]) + "-a"
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "-n", ns, "link", "set", "lo", "up")
	ip(t, "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ip(t, "-n", ns, "link", "set", "up0", "up")
	ip(t, "-n", ns, "link", "set", "up1", "up")
	ip(t, "-n", ns, "route", "add", "default", "via", "10.99.0.254", "dev", "up0", "onlink")
	routes := func() string { return ip(t, "-n", ns, "-4", "route", "show", "table", "all") }
	without := routes()

	var r *Receiver
	in(t, ns, func() error {
		var err error
		r, err = Open(Config{Port: testPort, Peer: noPeer, Insecure: true})
		return err
	})
	t.Cleanup(func() { r.Close() })

	out := ip(t, "-n", ns, "-4", "-o", "addr", "show", "dev", DefaultDevice)
	if !strings.Contains(out, "inet 192.0.0.8/32 scope host noprefixroute "+DefaultDevice) {
		t.Errorf("address: %s", out)
	}
	var added []string
	for _, line := range strings.Split(routes(), "\n") {
		if line != "" && !strings.Contains(without, line) {
			added = append(added, line)
		}
	}
	if len(added) != 1 || !strings.HasPrefix(added[0], "local 192.0.0.8 dev "+DefaultDevice+" table local") {
		t.Errorf("routes added: %q, want only the address's local route", added)
	}
	if out, _ := exec.Command("ip", "-n", ns, "route", "get", "192.0.2.1").CombinedOutput(); strings.Contains(string(out), "src 192.0.0.8") {
		t.Errorf("the dummy address is picked as a source:\n%s", out)
	}

	r.Close()
	if now := routes(); now != without {
		t.Errorf("routes after Close:\n%s\nwant:\n%s", now, without)
	}
}

// rpFilterDrops reads TcpExt IPReversePathFilter of namespace ns.
func rpFilterDrops(t *testing.T, ns string) int {
	t.Helper()
	var b []byte
	in(t, ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	})
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == "IPReversePathFilter" && j < len(values) {
				v, _ := strconv.Atoi(values[j])
				return v
			}
		}
	}
	t.Fatal("no TcpExt IPReversePathFilter")
	return 0
}
