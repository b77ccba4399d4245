//go:build linux

package inject

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The pod behind R: namespace P on veth R pod0 10.89.0.1 <-> P eth0
// 10.89.0.2, and in R a DNAT rule udp VIP:80 -> pod:80, as kube-proxy would.
var (
	podGW4 = netip.MustParseAddr("10.89.0.1")
	pod4   = netip.MustParseAddr("10.89.0.2")
)

// addPod adds namespace P behind R with the DNAT rule, and turns on
// forwarding in R (before the receiver opens, so its device inherits it).
func (l *testLab) addPod(t *testing.T) string {
	t.Helper()
	p := strings.TrimSuffix(l.r, "-r") + "-p"
	ip(t, "netns", "add", p)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p).Run() })
	ip(t, "-n", p, "link", "set", "lo", "up")
	writeSysctl(t, l.r, "net.ipv4.ip_forward", "1")
	ip(t, "-n", l.r, "link", "add", "pod0", "mtu", "9000", "type", "veth", "peer", "name", "eth0", "mtu", "9000", "netns", p)
	ip(t, "-n", l.r, "link", "set", "pod0", "up")
	ip(t, "-n", l.r, "addr", "add", podGW4.String()+"/24", "dev", "pod0")
	ip(t, "-n", p, "link", "set", "eth0", "up")
	ip(t, "-n", p, "addr", "add", pod4.String()+"/24", "dev", "eth0")
	ip(t, "-n", p, "route", "add", "default", "via", podGW4.String())
	// S reaches the VIP through R (clients are addresses on S's lo).
	ip(t, "-n", l.s, "route", "add", vip4.String()+"/32", "via", "10.88.0.2")

	h, err := netns.GetFromName(l.r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	port := binary.BigEndian.AppendUint16(nil, 80)
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "injtest"})
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip4.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Immediate{Register: 1, Data: pod4.AsSlice()},
		&expr.Immediate{Register: 2, Data: port},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("installing DNAT: %v", err)
	}
	return p
}

// podFlow makes a UDP flow client:port -> VIP:80 that R DNATs to the pod
// (one datagram from S, so R's conntrack has it), and returns the pod's
// socket pod:80 -> client:port with path-MTU discovery on.
func (l *testLab) podFlow(t *testing.T, p string, client netip.Addr, port int) *pmtuSocket {
	t.Helper()
	s := openPMTUSocketFrom(t, p, pod4, client, port)
	ip(t, "-n", l.s, "addr", "add", client.String()+"/32", "dev", "lo")
	in(t, l.s, func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: client.AsSlice(), Port: port}, &net.UDPAddr{IP: vip4.AsSlice(), Port: 80})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello pod"))
		return err
	})
	// The datagram reached the pod: the flow is in R's conntrack, DNATed.
	var b [64]byte
	in(t, p, func() error {
		tv := unix.NsecToTimeval(int64(2e9))
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(s.fd, b[:], 0)
		if err != nil {
			return fmt.Errorf("pod did not get the client's datagram through the DNAT: %w", err)
		}
		if string(b[:n]) != "hello pod" {
			return fmt.Errorf("pod got %q", b[:n])
		}
		return nil
	})
	return s
}

// setDummyAddr gives the device the RFC 7600 dummy address, or takes it
// away, whatever the receiver did.
func (l *testLab) setDummyAddr(t *testing.T, on bool) {
	t.Helper()
	has := strings.Contains(ip(t, "-n", l.r, "-4", "addr", "show", "dev", DefaultDevice), "inet "+dummyAddr4.String()+"/32")
	switch {
	case on && !has:
		ip(t, "-n", l.r, "addr", "add", dummyAddr4.String()+"/32", "dev", DefaultDevice, "scope", "host", "noprefixroute")
	case !on && has:
		ip(t, "-n", l.r, "addr", "del", dummyAddr4.String()+"/32", "dev", DefaultDevice)
	}
}

// TestReversePathFilterMatrix measures whether an IPv4 PTB injected on the
// device reaches (a) a socket on R (the VIP) and (b) a pod behind R's DNAT,
// for net.ipv4.conf.all.rp_filter = 0, 1, 2, with and without an IPv4
// address on the device (the device's own rp_filter is 0 throughout; the
// effective mode is max(all, device)). Linux 6.18, fib_validate_source:
//
//	all  address  delivered  why
//	0    no/yes   yes        no check
//	1    no/yes   no         strict: the route back to the router is not via the device
//	2    no       no         no address on the device: "last resort", rejected
//	2    yes      yes        loose: the router is reachable at all
//
// Each dropped copy raises TcpExt IPReversePathFilter by one.
func TestReversePathFilterMatrix(t *testing.T) {
	for _, all := range []string{"0", "1", "2"} {
		for _, addr := range []bool{false, true} {
			want := all == "0" || (all == "2" && addr)
			t.Run(fmt.Sprintf("all=%s/address=%v", all, addr), func(t *testing.T) {
				l := newTestLab(t, "net.ipv4.conf.all.rp_filter="+all)
				p := l.addPod(t)
				_, reg := l.receiver(t)
				l.setDummyAddr(t, addr)

				wantMTU := 9000
				if want {
					wantMTU = 1400
				}
				before := rpFilterDrops(t, l.r)
				c, port := nextClient(4)
				local := openPMTUSocket(t, l.r, c, port)
				l.send(t, netip.MustParseAddr("10.88.0.1"), datagram(4, ptbFor(c, uint16(port), 1400)))
				waitCount(t, reg, Injected, 1)
				if got := local.waitMTU(t, wantMTU); got != wantMTU {
					t.Errorf("(a) local socket: MTU %d, want %d", got, wantMTU)
				}

				c2, port2 := nextClient(4)
				pod := l.podFlow(t, p, c2, port2)
				if got := pod.mtu(t); got != 9000 {
					t.Fatalf("pod MTU before = %d, want 9000", got)
				}
				l.send(t, netip.MustParseAddr("10.88.0.1"), datagram(4, ptbFor(c2, uint16(port2), 1400)))
				waitCount(t, reg, Injected, 2)
				if got := pod.waitMTU(t, wantMTU); got != wantMTU {
					t.Errorf("(b) pod behind DNAT: MTU %d, want %d", got, wantMTU)
				}

				wantDrops := 2
				if want {
					wantDrops = 0
				}
				if after := rpFilterDrops(t, l.r); after-before != wantDrops {
					t.Errorf("IPReversePathFilter %d -> %d, want +%d", before, after, wantDrops)
				}
				t.Logf("all.rp_filter=%s address=%v: delivered=%v", all, addr, want)
			})
		}
	}
}
