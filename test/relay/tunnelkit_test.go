//go:build linux

package relay_test

import (
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// Test keys (never used anywhere else).
const (
	keyA = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	keyB = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	keyX = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff" // nobody's
)

func result(r string) string { return `gopmtud_tunnel_received_total{result="` + r + `"}` }

// writeKeys (re)writes a key file atomically (rename), as a Secret update does.
func writeKeys(t *testing.T, path string, keys ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("# test keys\n"+strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startTunnel starts the segment's daemons with --transport tunnel, each
// with its own key file holding keys; it returns the daemons and the files.
func startTunnel(t *testing.T, s *testnet.Segment, keys []string, extra ...string) ([]*testnet.Daemon, []string) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	var ds []*testnet.Daemon
	for i, ns := range s.Nodes {
		f := filepath.Join(dir, ns+".keys")
		writeKeys(t, f, keys...)
		files = append(files, f)
		args := append([]string{"--iface", "eth0", "--transport", "tunnel", "--peers", s.PeersOf(i),
			"--nodename", ns, "--log-format", "text", "--log-level", "debug", "--tunnel-key-file", f}, extra...)
		ds = append(ds, testnet.StartDaemon(t, ns, binary, args, nil))
	}
	for _, d := range ds {
		d.WaitReady(t, 10*time.Second)
	}
	return ds, files
}

func ring(t *testing.T, hexKey string) *tunnelwire.Keyring {
	t.Helper()
	if hexKey == "" {
		return nil
	}
	r, err := tunnelwire.ParseKeyFile([]byte(hexKey))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sealed is a datagram as a peer's sender makes it, signed with hexKey
// ("": unsigned), stamped ts.
func sealed(t *testing.T, hexKey string, pkt []byte, ts time.Time, epoch, counter uint64) []byte {
	t.Helper()
	d := make([]byte, tunnelwire.HeaderLen, tunnelwire.HeaderLen+len(pkt))
	h := tunnelwire.Header{Family: pkt[0] >> 4, Timestamp: ts.UnixMilli(), Epoch: epoch, Counter: counter}
	tunnelwire.NewSealer(ring(t, hexKey)).Seal(d, &h, pkt)
	return append(d, pkt...)
}

// spoofer sends UDP datagrams from namespace ns with any source address:
// a transparent socket (IP_TRANSPARENT) may bind and send from addresses it
// does not hold, as an attacker on the path forges them.
type spoofer struct{ ns string }

func newSpoofer(t *testing.T, ns string) *spoofer { return &spoofer{ns: ns} }

func (s *spoofer) send(t *testing.T, src, dst netip.Addr, port int, ds ...[]byte) {
	t.Helper()
	err := netnsutil.DoNamed(s.ns, func() error {
		family := unix.AF_INET
		if dst.Is6() {
			family = unix.AF_INET6
		}
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
		if dst.Is6() {
			level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
		}
		if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
			return err
		}
		var from, to unix.Sockaddr
		if dst.Is6() {
			from, to = &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16(), Port: port}
		} else {
			from, to = &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4(), Port: port}
		}
		if err := unix.Bind(fd, from); err != nil {
			return err
		}
		for _, d := range ds {
			if err := unix.Sendto(fd, d, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("spoofed send %v -> %v: %v", src, dst, err)
	}
}

// rxPackets is a link's receive counter in namespace ns: what was written
// into pmtud0 shows here.
func rxPackets(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.RxPackets
}

// ptbSniffer counts PTBs (ICMPv4 3/4, ICMPv6 2) leaving a namespace's
// eth0: an injected PTB for somebody else would be forwarded there.
type ptbSniffer struct{ fd int }

func newPTBSniffer(t *testing.T, ns string) *ptbSniffer {
	t.Helper()
	s := &ptbSniffer{fd: -1}
	err := netnsutil.DoNamed(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		s.fd = fd
		ifi, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Attrs().Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// outgoing drains what was captured and counts outgoing PTBs.
func (s *ptbSniffer) outgoing() int {
	n := 0
	buf := make([]byte, 2048)
	for {
		k, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return n
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING || k < 1 {
			continue
		}
		p := buf[:k]
		switch {
		case p[0]>>4 == 4 && k >= 22 && p[9] == unix.IPPROTO_ICMP && p[(p[0]&0xf)*4] == 3 && p[(p[0]&0xf)*4+1] == 4:
			n++
		case p[0]>>4 == 6 && k >= 42 && p[6] == unix.IPPROTO_ICMPV6 && p[40] == 2:
			n++
		}
	}
}

func hexKey(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pmtuSocket is a connected UDP socket local:80 -> client:port in ns with
// path-MTU discovery on: its IP_MTU shows whether a PTB about it reached
// the kernel.
type pmtuSocket struct{ fd, level, opt int }

func openPMTUSocket(t *testing.T, ns string, local, client netip.Addr, port int) *pmtuSocket {
	t.Helper()
	s := &pmtuSocket{fd: -1}
	family, discover, do := unix.AF_INET6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO
	s.level, s.opt = unix.IPPROTO_IPV6, unix.IPV6_MTU
	var from, to unix.Sockaddr
	if client.Is4() {
		family, discover, do = unix.AF_INET, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO
		s.level, s.opt = unix.IPPROTO_IP, unix.IP_MTU
		from, to = &unix.SockaddrInet4{Port: 80, Addr: local.As4()}, &unix.SockaddrInet4{Port: port, Addr: client.As4()}
	} else {
		from, to = &unix.SockaddrInet6{Port: 80, Addr: local.As16()}, &unix.SockaddrInet6{Port: port, Addr: client.As16()}
	}
	err := netnsutil.DoNamed(ns, func() error {
		var err error
		if s.fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err = unix.SetsockoptInt(s.fd, s.level, discover, do); err != nil {
			return err
		}
		if err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err = unix.Bind(s.fd, from); err != nil {
			return err
		}
		return unix.Connect(s.fd, to)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *pmtuSocket) mtu() int {
	v, _ := unix.GetsockoptInt(s.fd, s.level, s.opt)
	return v
}

// filterReady reports whether ns's tunnel filter knows peers and node
// addresses (the daemon fills its sets within a second of starting).
func filterReady(t *testing.T, ns string) bool {
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
	table := &nftables.Table{Name: "go-pmtud", Family: nftables.TableFamilyINet}
	for _, name := range []string{"tunnel_peers4", "tunnel_peers6", "tunnel_addrs4", "tunnel_addrs6"} {
		set, err := c.GetSetByName(table, name)
		if err != nil {
			return false
		}
		if els, err := c.GetSetElements(set); err != nil || len(els) == 0 {
			return false
		}
	}
	return true
}

// filterDrops is the kernel filter's drop count, as the daemon exports it
// (gopmtud_tunnel_filtered_total, both reasons).
func filterDrops(t *testing.T, d *testnet.Daemon) float64 {
	t.Helper()
	m := d.Metrics(t)
	return m[`gopmtud_tunnel_filtered_total{reason="not_peer"}`] + m[`gopmtud_tunnel_filtered_total{reason="not_node_address"}`]
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
