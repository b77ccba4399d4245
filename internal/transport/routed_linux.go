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

	mu  sync.Mutex
	v4  *routedSock
	v6  *routedSock
	cur *routedSock // the socket of the Send in progress, for fail
	oe  func(netip.Addr, error)
	fl  func(int, error)
}

// routedSock is one raw socket with its batch and per-slot buffers.
type routedSock struct {
	f    *os.File
	b    *batch
	hdr  []byte // per-slot header: 20 bytes (IPv4) or 4 bytes (ICMPv6 head)
	sa4  []unix.RawSockaddrInet4
	sa6  []unix.RawSockaddrInet6
	slot []netip.Addr
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
	r.fl = r.fail
	var err error
	if r.v4, err = openRouted4(); err != nil {
		return nil, fmt.Errorf("routed: %w", err)
	}
	r.v6, err = openRouted6(cfg.TTL, cfg.Source6)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		r.v6, err = nil, nil
	}
	if err != nil {
		r.v4.f.Close()
		return nil, fmt.Errorf("routed: %w", err)
	}
	return r, nil
}

func openRouted4() (*routedSock, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, os.NewSyscallError("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", err)
	}
	s, err := newRoutedSock(fd, "routed4", ipv4HeaderLen)
	if err != nil {
		return nil, err
	}
	s.sa4 = make([]unix.RawSockaddrInet4, len(s.slot))
	for i := range s.sa4 {
		s.sa4[i].Family = unix.AF_INET
	}
	return s, nil
}

func openRouted6(ttl int, src netip.Addr) (*routedSock, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
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
	s, err := newRoutedSock(fd, "routed6", icmpHeadLen)
	if err != nil {
		return nil, err
	}
	s.sa6 = make([]unix.RawSockaddrInet6, len(s.slot))
	for i := range s.sa6 {
		s.sa6[i].Family = unix.AF_INET6
	}
	return s, nil
}

func newRoutedSock(fd int, name string, hdrLen int) (*routedSock, error) {
	// A non-blocking fd makes os.NewFile register it with the runtime
	// poller, so a full send buffer parks the goroutine, not the thread.
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &routedSock{
		f:    f,
		b:    newBatch(rc, defaultBatch),
		hdr:  make([]byte, defaultBatch*hdrLen),
		slot: make([]netip.Addr, defaultBatch),
	}, nil
}

// Name implements Sender.
func (r *Routed) Name() string { return "routed" }

// Send implements Sender: one packet per peer, in sendmmsg(2) batches. It
// does not allocate.
func (r *Routed) Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int {
	var s *routedSock
	switch m.Family {
	case 4:
		s = r.v4
	case 6:
		s = r.v6
	}
	if s == nil || len(m.ICMP) < 8 {
		err := ErrFamily
		if s != nil {
			err = ErrBadMessage
		}
		for _, p := range to {
			report(onErr, p.Addr, err)
		}
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur, r.oe = s, onErr
	var bodySum uint32
	if m.Family == 6 {
		bodySum = icmp6BodySum(m.ICMP)
	}
	sent := 0
	for _, p := range to {
		if !familyMatches(m.Family, p.Addr) {
			report(onErr, p.Addr, ErrFamily)
			continue
		}
		i := s.b.n
		s.slot[i] = p.Addr
		if m.Family == 4 {
			h := s.hdr[i*ipv4HeaderLen : (i+1)*ipv4HeaderLen]
			putIPv4Header(h, r.src4, p.Addr, r.ttl, len(m.ICMP))
			s.sa4[i].Addr = p.Addr.As4()
			s.b.add(h, m.ICMP, unsafe.Pointer(&s.sa4[i]), unix.SizeofSockaddrInet4)
		} else {
			h := s.hdr[i*icmpHeadLen : (i+1)*icmpHeadLen]
			if r.src6.IsValid() {
				putICMPv6Head(h, m.ICMP, r.src6, p.Addr, bodySum)
			} else {
				// Source unknown until the kernel routes it; it fills
				// in the checksum (see Routed).
				h[0], h[1], h[2], h[3] = m.ICMP[0], m.ICMP[1], 0, 0
			}
			s.sa6[i].Addr = p.Addr.As16()
			s.b.add(h, m.ICMP[icmpHeadLen:], unsafe.Pointer(&s.sa6[i]), unix.SizeofSockaddrInet6)
		}
		if s.b.full() {
			sent += s.b.flush(r.fl)
		}
	}
	if s.b.n > 0 {
		sent += s.b.flush(r.fl)
	}
	r.cur, r.oe = nil, nil
	return sent
}

func (r *Routed) fail(i int, err error) { report(r.oe, r.cur.slot[i], err) }

// Close closes both sockets.
func (r *Routed) Close() error {
	var errs []error
	if r.v4 != nil {
		errs = append(errs, r.v4.f.Close())
	}
	if r.v6 != nil {
		errs = append(errs, r.v6.f.Close())
	}
	return errors.Join(errs...)
}
