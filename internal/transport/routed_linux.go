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

// RoutedConfig configures the routed (L3) transport.
type RoutedConfig struct {
	// TTL is the IPv4 TTL and IPv6 hop limit of the copies, 1..255.
	TTL int
	// Source4 and Source6 are the copies' source addresses. The zero Addr
	// lets the kernel pick the route's preferred source per peer.
	Source4, Source6 netip.Addr
}

// Routed relays the ICMP message in a new IP header from this node to each
// peer, so it crosses routed fabrics, as the original sapcc/go-pmtud did.
//
// IPv4: a 20-byte header (src self, dst peer, TTL) in front of the ICMP
// message, unchanged: the ICMPv4 checksum covers only the ICMP message. It is
// sent on an IPPROTO_RAW socket, which implies IP_HDRINCL and is send-only
// (raw(7)).
//
// IPv6: the ICMPv6 message on a raw ICMPv6 socket; the kernel builds the IPv6
// header (hop limit from IPV6_UNICAST_HOPS). The checksum covers the
// pseudo-header, so it must change with the new addresses: we write it for
// Source6 when it is set, and Linux recomputes it on every raw ICMPv6 socket
// anyway (RFC 3542 section 3.1; it cannot be turned off), which is what makes
// the kernel-chosen source work. An ICMP6_FILTER that blocks every type keeps
// the socket from ever queueing received packets.
//
// Send is safe for concurrent use but serialised.
type Routed struct {
	ttl        uint8
	src4, src6 netip.Addr
	v6         *sock
	bodySum    uint64 // of the message being sent: the same for every peer
	stateless
	sendLoop
}

var _ Sender = (*Routed)(nil)

// NewRouted opens one raw socket per address family in the calling thread's
// network namespace. If the kernel has no IPv6, IPv6 messages are reported
// as ErrFamily instead of failing the constructor.
func NewRouted(cfg RoutedConfig) (*Routed, error) {
	if cfg.TTL < 1 || cfg.TTL > 255 {
		return nil, fmt.Errorf("routed: TTL %d out of range 1..255", cfg.TTL)
	}
	if cfg.Source4.IsValid() && !cfg.Source4.Unmap().Is4() {
		return nil, fmt.Errorf("routed: Source4 %s is not an IPv4 address", cfg.Source4)
	}
	if cfg.Source6.IsValid() && (!cfg.Source6.Is6() || cfg.Source6.Is4In6()) {
		return nil, fmt.Errorf("routed: Source6 %s is not an IPv6 address", cfg.Source6)
	}
	r := &Routed{ttl: uint8(cfg.TTL), src4: cfg.Source4.Unmap(), src6: cfg.Source6}
	v4, v6, err := openFamilies(func(family int) (*sock, error) {
		if family == unix.AF_INET {
			return openRouted4()
		}
		return openRouted6(cfg.TTL, cfg.Source6)
	})
	if err != nil {
		return nil, fmt.Errorf("routed: %w", err)
	}
	r.v6 = v6
	r.init(r, v4, v6)
	return r, nil
}

func init() {
	register(Kind{
		Name:          "routed",
		CopiesKnownBy: "source address is a peer's",
		Open:          func(o Options) (Sender, error) { return NewRouted(RoutedConfig{TTL: o.TTL}) },
	})
}

func openRouted4() (*sock, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, os.NewSyscallError("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", err)
	}
	return newSock(fd, unix.AF_INET, "routed4", ipv4HeaderLen, 0)
}

func openRouted6(ttl int, src netip.Addr) (*sock, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, os.NewSyscallError("socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)", err)
	}
	// Block every ICMPv6 type: on Linux a set bit filters the type out.
	var filter unix.ICMPv6Filter
	for i := range filter.Data {
		filter.Data[i] = ^uint32(0)
	}
	if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &filter); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt(ICMP6_FILTER)", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt(IPV6_UNICAST_HOPS)", err)
	}
	if src.IsValid() {
		sa := &unix.SockaddrInet6{Addr: src.As16()}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError(fmt.Sprintf("bind(%s)", src), err)
		}
	}
	return newSock(fd, unix.AF_INET6, "routed6", icmpHeadLen, 0)
}

// Name implements Sender.
func (r *Routed) Name() string { return "routed" }

// Send implements Sender: one packet per peer that has an address of m's
// family (a re-addressed copy cannot change family; others get ErrFamily),
// in sendmmsg(2) batches. It does not allocate.
func (r *Routed) Send(m *ptb.Message, to []peers.Peer, onErr func(peer int, err error)) int {
	return r.send(m, to, onErr)
}

func (r *Routed) begin(m *ptb.Message) error {
	if len(m.ICMP) < 8 {
		return ErrBadMessage
	}
	if m.Family == 6 {
		if r.v6 == nil {
			return ErrFamily
		}
		r.bodySum = icmp6BodySum(m.ICMP)
	}
	return nil
}

func (r *Routed) pick(m *ptb.Message, _ int, p *peers.Peer) (target, error) {
	a := p.AddrOf(m.Family)
	if !a.IsValid() {
		return target{}, ErrFamily
	}
	si, err := familySock(a, r.v6)
	return target{sock: si, addr: a}, err
}

// frame builds slot i's header: IPv4, a new IP header before the unchanged
// ICMP message; IPv6, the ICMPv6 type, code and checksum for the new
// pseudo-header before the rest of the message.
func (r *Routed) frame(s *sock, i int, m *ptb.Message, t target) (head, body []byte) {
	h := s.head(i)
	if m.Family == 4 {
		putIPv4Header(h, r.src4, t.addr, r.ttl, len(m.ICMP))
		return h, m.ICMP
	}
	if r.src6.IsValid() {
		putICMPv6Head(h, m.ICMP, r.src6, t.addr, r.bodySum)
	} else {
		// Source unknown until the kernel routes it; it fills in the
		// checksum (see Routed).
		h[0], h[1], h[2], h[3] = m.ICMP[0], m.ICMP[1], 0, 0
	}
	return h, m.ICMP[icmpHeadLen:]
}
