//go:build linux

package transport

import (
	"fmt"
	"net/netip"
	"os"

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
	dualSock
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
	t.init(func(m *ptb.Message) bool { return len(m.Packet) > 0 }, t.head)
	err := t.open(func() (*ipSock, error) { return openTunnel(unix.AF_INET, t.port) },
		func() (*ipSock, error) { return openTunnel(unix.AF_INET6, t.port) })
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	return t, nil
}

func openTunnel(family int, port uint16) (*ipSock, error) {
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
	s, err := newIPSock(fd, family, name, TunnelHeaderLen, port)
	if err != nil {
		return nil, err
	}
	// The header is the same for every peer of the family: write it into
	// every slot once.
	f := uint8(4)
	if family == unix.AF_INET6 {
		f = 6
	}
	for i := 0; i < len(s.hdr); i += TunnelHeaderLen {
		PutTunnelHeader(s.hdr[i:i+TunnelHeaderLen], f)
	}
	return s, nil
}

// Name implements Sender.
func (t *Tunnel) Name() string { return "tunnel" }

// Send implements Sender: one datagram per peer, header then m.Packet
// (never copied), in sendmmsg(2) batches. It does not allocate.
func (t *Tunnel) Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int {
	return t.send(m, to, onErr, 0)
}

func (t *Tunnel) head(s *ipSock, i int, m *ptb.Message, _ netip.Addr, _ uint32) (head, body []byte) {
	return s.hdr[i*TunnelHeaderLen : (i+1)*TunnelHeaderLen], m.Packet
}
