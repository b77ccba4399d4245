//go:build linux

package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// TunnelConfig configures the tunnel transport.
type TunnelConfig struct {
	// Port is the UDP port peers receive on (default DefaultTunnelPort).
	Port int
}

// Tunnel relays the original IP packet, unchanged, in a UDP datagram to
// each peer's address (framing in tunnel.go). The peer's go-pmtud injects it
// into its own stack through a TUN device (package inject), so the packet
// reaches the peer's kernel with its original outer destination, the VIP:
// conntrack relates it to a DNATed flow, which a re-addressed copy (routed)
// never is. It crosses routed fabrics like any UDP.
//
// One unbound UDP socket per family; the kernel picks the source address,
// which must be the address peers know this node by (they accept datagrams
// only from peer addresses). A drop-all socket filter keeps the sockets
// from ever queueing a received datagram.
//
// Send is safe for concurrent use but serialised.
type Tunnel struct {
	port uint16

	mu  sync.Mutex
	v4  *tunnelSock
	v6  *tunnelSock
	cur *tunnelSock // the socket of the Send in progress, for fail
	oe  func(netip.Addr, error)
	fl  func(int, error)
}

type tunnelSock struct {
	f    *os.File
	b    *batch
	hdr  [TunnelHeaderLen]byte // the same for every peer of the family
	sa4  []unix.RawSockaddrInet4
	sa6  []unix.RawSockaddrInet6
	slot []netip.Addr
}

var _ Sender = (*Tunnel)(nil)

// NewTunnel opens one UDP socket per family in the calling thread's network
// namespace. If the kernel has no IPv6, IPv6 messages are reported as
// ErrFamily instead of failing the constructor.
func NewTunnel(cfg TunnelConfig) (*Tunnel, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultTunnelPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("tunnel: port %d out of range 1..65535", cfg.Port)
	}
	t := &Tunnel{port: uint16(cfg.Port)}
	t.fl = t.fail
	var err error
	if t.v4, err = openTunnel(unix.AF_INET, t.port); err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t.v6, err = openTunnel(unix.AF_INET6, t.port)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		t.v6, err = nil, nil
	}
	if err != nil {
		t.v4.f.Close()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	return t, nil
}

func openTunnel(family int, port uint16) (*tunnelSock, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket(SOCK_DGRAM)", err)
	}
	// The socket gets an ephemeral port on its first send, and anything
	// sent to that port would queue unread: filter every datagram out.
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt(SO_ATTACH_FILTER)", err)
	}
	name := "tunnel4"
	if family == unix.AF_INET6 {
		name = "tunnel6"
	}
	// A non-blocking fd makes os.NewFile register it with the runtime
	// poller, so a full send buffer parks the goroutine, not the thread.
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &tunnelSock{f: f, b: newBatch(rc, defaultBatch), slot: make([]netip.Addr, defaultBatch)}
	// sockaddr ports are in network byte order.
	nport := [2]byte{byte(port >> 8), byte(port)}
	if family == unix.AF_INET {
		PutTunnelHeader(s.hdr[:], 4)
		s.sa4 = make([]unix.RawSockaddrInet4, defaultBatch)
		for i := range s.sa4 {
			s.sa4[i].Family = unix.AF_INET
			*(*[2]byte)(unsafe.Pointer(&s.sa4[i].Port)) = nport
		}
	} else {
		PutTunnelHeader(s.hdr[:], 6)
		s.sa6 = make([]unix.RawSockaddrInet6, defaultBatch)
		for i := range s.sa6 {
			s.sa6[i].Family = unix.AF_INET6
			*(*[2]byte)(unsafe.Pointer(&s.sa6[i].Port)) = nport
		}
	}
	return s, nil
}

// Name implements Sender.
func (t *Tunnel) Name() string { return "tunnel" }

// Send implements Sender: one datagram per peer, header then m.Packet
// (never copied), in sendmmsg(2) batches. It does not allocate.
func (t *Tunnel) Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int {
	var s *tunnelSock
	switch m.Family {
	case 4:
		s = t.v4
	case 6:
		s = t.v6
	}
	if s == nil || len(m.Packet) == 0 {
		err := ErrFamily
		if s != nil {
			err = ErrBadMessage
		}
		for _, p := range to {
			report(onErr, p.Addr, err)
		}
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur, t.oe = s, onErr
	sent := 0
	for _, p := range to {
		if !familyMatches(m.Family, p.Addr) {
			report(onErr, p.Addr, ErrFamily)
			continue
		}
		i := s.b.n
		s.slot[i] = p.Addr
		if m.Family == 4 {
			s.sa4[i].Addr = p.Addr.Unmap().As4()
			s.b.add(s.hdr[:], m.Packet, unsafe.Pointer(&s.sa4[i]), unix.SizeofSockaddrInet4)
		} else {
			s.sa6[i].Addr = p.Addr.As16()
			s.b.add(s.hdr[:], m.Packet, unsafe.Pointer(&s.sa6[i]), unix.SizeofSockaddrInet6)
		}
		if s.b.full() {
			sent += s.b.flush(t.fl)
		}
	}
	if s.b.n > 0 {
		sent += s.b.flush(t.fl)
	}
	t.cur, t.oe = nil, nil
	return sent
}

func (t *Tunnel) fail(i int, err error) { report(t.oe, t.cur.slot[i], err) }

// Close closes both sockets.
func (t *Tunnel) Close() error {
	var errs []error
	if t.v4 != nil {
		errs = append(errs, t.v4.f.Close())
	}
	if t.v6 != nil {
		errs = append(errs, t.v6.f.Close())
	}
	return errors.Join(errs...)
}
