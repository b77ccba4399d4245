//go:build linux

package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

// Inject sends a PTB from router r toward the VIP (routed to node 0) with
// the kernel's raw sockets. IPv4 is sent with IP_HDRINCL, so the kernel
// fills in the header checksum and total length (raw(7)); IPv6 raw sockets
// take no header, so the kernel builds it from the router's address and
// computes the ICMPv6 checksum. For bytes the kernel must not fix, use a
// FrameInjector.
func (s *Segment) Inject(t testing.TB, r int, pkt []byte, v6 bool) {
	t.Helper()
	InjectFrom(t, s.Routers[r], pkt, v6)
}

// InjectFrom sends pkt toward the VIP from namespace ns, routed by ns's
// own table, as Inject does from a segment's router.
func InjectFrom(t testing.TB, ns string, pkt []byte, v6 bool) {
	t.Helper()
	err := netnsutil.DoNamed(ns, func() error {
		if !v6 {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(VIP4).As4()})
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, pkt[40:], 0, &unix.SockaddrInet6{Addr: netip.MustParseAddr(VIP6).As16()})
	})
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// FrameInjector writes whole Ethernet frames from a router's eth0 to one
// node's eth0 MAC on an AF_PACKET socket: the IP packet arrives exactly as
// built, with whatever lies its header tells, and the node's kernel decides
// what reaches netfilter.
type FrameInjector struct {
	fd  int
	hdr [14]byte
	buf []byte
}

// NewFrameInjector opens the socket in router r's namespace, addressed to
// node n. Close it when done (t.Cleanup does too).
func (s *Segment) NewFrameInjector(t testing.TB, r, n int) *FrameInjector {
	t.Helper()
	dst := s.NodeMAC(t, n)
	fi := &FrameInjector{fd: -1}
	err := netnsutil.DoNamed(s.Routers[r], func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		// Protocol 0: a send-only socket, nothing is queued to it.
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		fi.fd = fd
		copy(fi.hdr[0:6], dst)
		copy(fi.hdr[6:12], ifi.HardwareAddr)
		return nil
	})
	if err != nil {
		t.Fatalf("frame injector in %s: %v", s.Routers[r], err)
	}
	t.Cleanup(func() { fi.Close() })
	return fi
}

// NodeMAC is node n's eth0 MAC address.
func (s *Segment) NodeMAC(t testing.TB, n int) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := netnsutil.DoNamed(s.Nodes[n], func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatalf("MAC of %s eth0: %v", s.Nodes[n], err)
	}
	return mac
}

// Send writes pkt (an IP packet) in one frame. The EtherType follows the
// first nibble (6: IPv6, anything else: IPv4), so a bad version still
// reaches the node's IPv4 input.
func (fi *FrameInjector) Send(pkt []byte) error {
	et := uint16(unix.ETH_P_IP)
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		et = unix.ETH_P_IPV6
	}
	return fi.SendType(et, pkt)
}

// SendTo writes pkt in one frame to another destination MAC (e.g. the
// broadcast address), EtherType as Send.
func (fi *FrameInjector) SendTo(dst net.HardwareAddr, pkt []byte) error {
	var saved [6]byte
	copy(saved[:], fi.hdr[0:6])
	copy(fi.hdr[0:6], dst)
	defer copy(fi.hdr[0:6], saved[:])
	return fi.Send(pkt)
}

// SendType writes pkt in one frame with the given EtherType.
func (fi *FrameInjector) SendType(etherType uint16, pkt []byte) error {
	binary.BigEndian.PutUint16(fi.hdr[12:], etherType)
	fi.buf = append(append(fi.buf[:0], fi.hdr[:]...), pkt...)
	_, err := unix.Write(fi.fd, fi.buf)
	return err
}

// Flood sends the packets next returns, as fast as one thread can, until
// max packets were sent or d has passed, whichever comes first. next gets
// the sequence number and returns the packet to send (it may reuse a
// buffer). It returns how many frames were sent and how long it took. A
// full socket buffer (ENOBUFS) is counted as a drop, not an error.
func (fi *FrameInjector) Flood(max int, d time.Duration, next func(i int) []byte) (sent, dropped int, took time.Duration, err error) {
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < max; i++ {
		// Reading the clock costs little next to a syscall, but not nothing.
		if i%256 == 0 && time.Now().After(deadline) {
			break
		}
		switch err := fi.Send(next(i)); err {
		case nil:
			sent++
		case unix.ENOBUFS, unix.EAGAIN:
			dropped++
		default:
			return sent, dropped, time.Since(start), fmt.Errorf("frame %d: %w", i, err)
		}
	}
	return sent, dropped, time.Since(start), nil
}

// Close closes the socket.
func (fi *FrameInjector) Close() error {
	if fi.fd < 0 {
		return nil
	}
	err := unix.Close(fi.fd)
	fi.fd = -1
	return err
}
