//go:build linux

package transport

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// TunnelConfig configures the tunnel transport.
type TunnelConfig struct {
	// Port is the UDP port peers receive on (default DefaultTunnelPort).
	Port int
	// Keys gives the keyring to sign with (its first key), read per message
	// so a reloaded key file takes effect at once. Required unless Insecure.
	Keys KeySource
	// Insecure sends unsigned datagrams when Keys is nil (labs only: a
	// receiver with keys refuses them).
	Insecure bool
}

// KeySource gives the current tunnel keyring (tunnelwire.KeyFile does).
type KeySource interface {
	Keyring() *tunnelwire.Keyring
}

// ErrNoTunnelKey is returned by NewTunnel without keys and without Insecure.
var ErrNoTunnelKey = errors.New("tunnel: no key: give --tunnel-key-file (or, in a lab only, --tunnel-insecure)")

// Tunnel relays the original IP packet, unchanged, in a UDP datagram to
// each peer's address, after a signed header (package tunnelwire). The
// peer's go-pmtud verifies it and injects the packet into its own stack
// through a TUN device (package inject), so the packet reaches the peer's
// kernel with its original outer destination, the VIP: conntrack relates it
// to a DNATed flow, which a re-addressed copy (routed) never is. It crosses
// routed fabrics like any UDP, and carries either family to a peer known by
// one address (an IPv6 PTB in IPv4 UDP).
//
// One unbound UDP socket per family; the kernel picks the source address,
// which must be the address peers know this node by (they accept datagrams
// only from peer addresses). A drop-all socket filter keeps the sockets
// from ever queueing a received datagram.
//
// Send is safe for concurrent use but serialised.
type Tunnel struct {
	port uint16
	v6   *sock
	keys KeySource

	// The header of the message being sent: the same for every peer (it
	// names no receiver), sealed once per message in begin.
	sealer  *tunnelwire.Sealer
	epoch   uint64
	counter uint64
	h       tunnelwire.Header
	hdr     [tunnelwire.HeaderLen]byte

	stateless
	sendLoop
}

var _ Sender = (*Tunnel)(nil)

func init() {
	register(Kind{
		Name:          "tunnel",
		AnyFamily:     true,
		Receiver:      true,
		CopiesKnownBy: "arrived on the tunnel device",
		Open: func(o Options) (Sender, error) {
			return NewTunnel(TunnelConfig{Port: o.TunnelPort, Keys: o.TunnelKeys, Insecure: o.TunnelInsecure})
		},
	})
}

// NewTunnel opens one UDP socket per family in the calling thread's network
// namespace. If the kernel has no IPv6, peers known only by IPv6 are
// reported as ErrFamily instead of failing the constructor.
func NewTunnel(cfg TunnelConfig) (*Tunnel, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultTunnelPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("tunnel: port %d out of range 1..65535", cfg.Port)
	}
	if cfg.Keys == nil && !cfg.Insecure {
		return nil, ErrNoTunnelKey
	}
	t := &Tunnel{port: uint16(cfg.Port), keys: cfg.Keys, sealer: tunnelwire.NewSealer(nil)}
	// A random epoch per start: the receivers' replay windows then accept
	// our counter starting again from 0.
	var e [8]byte
	if _, err := rand.Read(e[:]); err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t.epoch = binary.BigEndian.Uint64(e[:])
	v4, v6, err := openFamilies(func(family int) (*sock, error) { return openTunnel(family, t.port) })
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t.v6 = v6
	t.init(t, v4, v6)
	return t, nil
}

func openTunnel(family int, port uint16) (*sock, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
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
	// Each slot keeps its own copy of the sealed header: a batch holds the
	// frames of several messages.
	return newSock(fd, family, name, tunnelwire.HeaderLen, port)
}

// Name implements Sender.
func (t *Tunnel) Name() string { return "tunnel" }

// Send implements Sender: one datagram per peer, the signed header then
// m.Packet (never copied), in sendmmsg(2) batches. It does not allocate,
// except when the keyring changed since the last message.
func (t *Tunnel) Send(m *ptb.Message, to []peers.Peer, onErr func(peer int, err error)) int {
	return t.send(m, to, onErr)
}

// begin seals the message's header once (under the send loop's lock, as
// pick and frame run).
func (t *Tunnel) begin(m *ptb.Message) error {
	if len(m.Packet) == 0 || (m.Family != 4 && m.Family != 6) {
		return ErrBadMessage
	}
	if t.keys != nil {
		if ring := t.keys.Keyring(); ring != t.sealer.Keyring() {
			t.sealer = tunnelwire.NewSealer(ring)
		}
	}
	t.counter++
	t.h = tunnelwire.Header{Family: m.Family, Timestamp: time.Now().UnixMilli(), Epoch: t.epoch, Counter: t.counter}
	t.sealer.Seal(t.hdr[:], &t.h, m.Packet)
	return nil
}

// pick sends to the peer's address of the message's family when it has
// one, else to its other address: the datagram carries either family.
func (t *Tunnel) pick(m *ptb.Message, _ int, p *peers.Peer) (target, error) {
	a := p.AddrOf(m.Family)
	if !a.IsValid() {
		a = p.Addr()
	}
	si, err := familySock(a, t.v6)
	return target{sock: si, addr: a}, err
}

func (t *Tunnel) frame(s *sock, i int, m *ptb.Message, _ target) (head, body []byte) {
	h := s.head(i)
	copy(h, t.hdr[:])
	return h, m.Packet
}
