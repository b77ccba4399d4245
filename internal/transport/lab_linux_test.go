//go:build linux

package transport

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// The lab: three "node" namespaces, each with eth0 (MTU 9000) on a bridge
// that lives in a fourth namespace. Nothing is linked to the root
// namespace, so no test packet can leave the lab.
//
//	n1 10.77.0.1 fd77::1 --+
//	n2 10.77.0.2 fd77::2 --+-- br0 (namespace "br")
//	n3 10.77.0.3 fd77::3 --+
//
// n2 and n3 also hold the VIP 10.99.0.1 / fd99::1 on lo, as every node of a
// cluster holds a LoadBalancer address, and every node's default route goes
// via 10.77.0.254 / fd77::fe: the "router" in front of the clients, which
// does not exist (nothing is ever sent to it).
var (
	labVIP4    = netip.MustParseAddr("10.99.0.1")
	labVIP6    = netip.MustParseAddr("fd99::1")
	labRouter4 = netip.MustParseAddr("10.77.0.254")
	labRouter6 = netip.MustParseAddr("fd77::fe")
)

type labNode struct {
	ns     string
	v4, v6 netip.Addr
	mac    [6]byte
}

func (n labNode) addr(f uint8) netip.Addr {
	if f == 4 {
		return n.v4
	}
	return n.v6
}

func (n labNode) peer(f uint8) peers.Peer {
	p := peers.PeerAt(n.addr(f))
	p.Name = n.ns
	return p
}

type lab struct {
	nodes [3]labNode
}

func needRoot(t testing.TB) {
	t.Helper()
	testnet.NeedRoot(t) // skips with the reason, or fails where root tests must run
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func ipOut(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t testing.TB) *lab {
	t.Helper()
	needRoot(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "pmtudtx-" + hex.EncodeToString(rnd[:])
	br := prefix + "-br"
	names := []string{br}
	l := &lab{}
	for i := range l.nodes {
		l.nodes[i] = labNode{
			ns: prefix + "-n" + string(rune('1'+i)),
			v4: netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}),
			v6: netip.MustParseAddr("fd77::" + string(rune('1'+i))),
		}
		names = append(names, l.nodes[i].ns)
	}
	for _, n := range names {
		run(t, "netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
		// No DAD on the lab's addresses, link-local ones included: while
		// fe80:: is tentative, neighbour discovery stalls for seconds.
		// (Inside the lab namespace only.)
		in(t, n, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644)
		})
	}
	run(t, "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "-n", br, "link", "set", "br0", "up")
	for i, n := range l.nodes {
		v := "v" + string(rune('1'+i))
		run(t, "-n", br, "link", "add", v, "mtu", "9000", "type", "veth", "peer", "name", "eth0", "mtu", "9000", "netns", n.ns)
		run(t, "-n", br, "link", "set", v, "master", "br0", "up")
		run(t, "-n", n.ns, "link", "set", "lo", "up")
		run(t, "-n", n.ns, "link", "set", "eth0", "up")
		run(t, "-n", n.ns, "addr", "add", n.v4.String()+"/24", "dev", "eth0")
		run(t, "-n", n.ns, "addr", "add", n.v6.String()+"/64", "dev", "eth0", "nodad")
		run(t, "-n", n.ns, "route", "add", "default", "via", labRouter4.String())
		run(t, "-n", n.ns, "-6", "route", "add", "default", "via", labRouter6.String())
		if i > 0 {
			run(t, "-n", n.ns, "addr", "add", labVIP4.String()+"/32", "dev", "lo")
			run(t, "-n", n.ns, "addr", "add", labVIP6.String()+"/128", "dev", "lo", "nodad")
		}
		l.nodes[i].mac = linkMAC(t, n.ns, "eth0")
	}
	return l
}

func linkMAC(t testing.TB, ns, ifname string) [6]byte {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	var mac [6]byte
	copy(mac[:], link.Attrs().HardwareAddr)
	return mac
}

// in runs fn inside node ns, on a dedicated thread (see netnsutil.Do).
func in(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := netnsutil.DoNamed(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// ptbMessage builds a PTB from the router to the VIP about a UDP flow
// VIP:80 -> client:port, and fills ptb.Message by hand as ptb.Parse would.
func ptbMessage(f uint8, client netip.Addr, port uint16, mtu uint32) *ptb.Message {
	router, vip := labRouter4, labVIP4
	ihl := 20
	if f == 6 {
		router, vip, ihl = labRouter6, labVIP6, 40
	}
	pkt := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: mtu, Proto: 17, SrcPort: 80, DstPort: port})
	return &ptb.Message{
		Family: f, Src: router, Dst: vip, HopLimit: 64, MTU: mtu,
		Inner:  ptb.Flow{Src: vip, Dst: client, Proto: 17, SrcPort: 80, DstPort: port},
		Packet: pkt, ICMP: pkt[ihl:],
	}
}

// sniffer reads every frame on a node's eth0 with an AF_PACKET socket.
type sniffer struct {
	c   *packet.Conn
	buf []byte
}

func sniff(t testing.TB, ns string) *sniffer {
	t.Helper()
	s := &sniffer{buf: make([]byte, 9100)}
	in(t, ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		s.c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	t.Cleanup(func() { s.c.Close() })
	return s
}

// next returns the next incoming PTB-looking frame (ICMPv4 type 3 or
// ICMPv6 type 2), skipping ARP, neighbour discovery and our own output, or
// nil after timeout.
func (s *sniffer) next(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		_ = s.c.SetReadDeadline(deadline)
		n, _, err := s.c.ReadFrom(s.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			t.Fatalf("sniff: %v", err)
		}
		f := s.buf[:n]
		if len(f) < 14 {
			continue
		}
		switch {
		case f[12] == 0x08 && f[13] == 0x00 && len(f) >= 35 && f[23] == 1 && f[34] == 3:
		case f[12] == 0x86 && f[13] == 0xdd && len(f) >= 55 && f[20] == 58 && f[54] == 2:
		default:
			continue
		}
		return append([]byte(nil), f...)
	}
	return nil
}

// pmtuSocket is a connected UDP socket in a node from VIP:80 to client:port
// with path-MTU discovery on, like a service answering a client.
type pmtuSocket struct {
	fd int
	f  uint8
}

func openPMTUSocket(t testing.TB, ns string, f uint8, client netip.Addr, port int) *pmtuSocket {
	t.Helper()
	s := &pmtuSocket{fd: -1, f: f}
	in(t, ns, func() error {
		var err error
		if f == 4 {
			if s.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			if err = unix.SetsockoptInt(s.fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
				return err
			}
			if err = unix.Bind(s.fd, &unix.SockaddrInet4{Port: 80, Addr: labVIP4.As4()}); err != nil {
				return err
			}
			return unix.Connect(s.fd, &unix.SockaddrInet4{Port: port, Addr: client.As4()})
		}
		if s.fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err = unix.SetsockoptInt(s.fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO); err != nil {
			return err
		}
		if err = unix.Bind(s.fd, &unix.SockaddrInet6{Port: 80, Addr: labVIP6.As16()}); err != nil {
			return err
		}
		return unix.Connect(s.fd, &unix.SockaddrInet6{Port: port, Addr: client.As16()})
	})
	t.Cleanup(func() {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
	})
	return s
}

func (s *pmtuSocket) mtu(t testing.TB) int {
	t.Helper()
	var v int
	var err error
	if s.f == 4 {
		v, err = unix.GetsockoptInt(s.fd, unix.IPPROTO_IP, unix.IP_MTU)
	} else {
		v, err = unix.GetsockoptInt(s.fd, unix.IPPROTO_IPV6, unix.IPV6_MTU)
	}
	if err != nil {
		t.Fatalf("getsockopt(IP_MTU): %v", err)
	}
	return v
}

// waitMTU polls the socket's path MTU until it equals want or 2 s pass,
// and returns the last value.
func (s *pmtuSocket) waitMTU(t testing.TB, want int) int {
	t.Helper()
	var got int
	for i := 0; i < 100; i++ {
		if got = s.mtu(t); got == want {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got
}
