//go:build linux

package transport

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// ipSock is one send-only IP-layer socket (raw or UDP) with its sendmmsg
// batch and per-slot buffers: a header slice and a destination sockaddr for
// each message of the batch, and the peer each slot is for (to report a
// failed slot against the right peer).
type ipSock struct {
	f    *os.File
	b    *batch
	hdr  []byte // hdrLen bytes per slot, for headers built per peer
	sa4  []unix.RawSockaddrInet4
	sa6  []unix.RawSockaddrInet6
	slot []netip.Addr
}

// newIPSock wraps fd (non-blocking, so os.NewFile registers it with the
// runtime poller and a full send buffer parks the goroutine, not the
// thread). port is the destination port written into every sockaddr, in
// network byte order; 0 for raw sockets.
func newIPSock(fd, family int, name string, hdrLen int, port uint16) (*ipSock, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &ipSock{
		f:    f,
		b:    newBatch(rc, defaultBatch),
		hdr:  make([]byte, defaultBatch*hdrLen),
		slot: make([]netip.Addr, defaultBatch),
	}
	nport := [2]byte{byte(port >> 8), byte(port)}
	if family == unix.AF_INET {
		s.sa4 = make([]unix.RawSockaddrInet4, defaultBatch)
		for i := range s.sa4 {
			s.sa4[i].Family = unix.AF_INET
			*(*[2]byte)(unsafe.Pointer(&s.sa4[i].Port)) = nport
		}
	} else {
		s.sa6 = make([]unix.RawSockaddrInet6, defaultBatch)
		for i := range s.sa6 {
			s.sa6[i].Family = unix.AF_INET6
			*(*[2]byte)(unsafe.Pointer(&s.sa6[i].Port)) = nport
		}
	}
	return s, nil
}

// headFunc fills in the per-peer part of message i of a batch: it returns
// the header to send (often a slice of s.hdr) and the body after it. aux is
// whatever the transport computed once per message (routed: the ICMPv6 body
// checksum).
type headFunc func(s *ipSock, i int, m *ptb.Message, peer netip.Addr, aux uint32) (head, body []byte)

// dualSock is what the routed and tunnel transports share: one ipSock per
// address family and the batched send loop over the peers. Send is safe for
// concurrent use but serialised.
type dualSock struct {
	v4, v6 *ipSock
	minLen func(m *ptb.Message) bool // m carries what the transport sends
	head   headFunc

	mu  sync.Mutex
	cur *ipSock // the socket of the send in progress, for fail
	oe  func(netip.Addr, error)
	fl  func(int, error)
}

// init must be called once the sockets are open; head and ok are method
// values stored once, so calling them per peer does not allocate.
func (d *dualSock) init(ok func(m *ptb.Message) bool, head headFunc) {
	d.minLen, d.head, d.fl = ok, head, d.fail
}

// send queues one message per peer of m's family, flushing full batches,
// and returns the number the kernel accepted. It does not allocate.
func (d *dualSock) send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error), aux uint32) int {
	var s *ipSock
	switch m.Family {
	case 4:
		s = d.v4
	case 6:
		s = d.v6
	}
	if s == nil || !d.minLen(m) {
		err := ErrFamily
		if s != nil {
			err = ErrBadMessage
		}
		for _, p := range to {
			report(onErr, p.Addr, err)
		}
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cur, d.oe = s, onErr
	sent := 0
	for _, p := range to {
		if !familyMatches(m.Family, p.Addr) {
			report(onErr, p.Addr, ErrFamily)
			continue
		}
		i := s.b.n
		s.slot[i] = p.Addr
		head, body := d.head(s, i, m, p.Addr, aux)
		if m.Family == 4 {
			s.sa4[i].Addr = p.Addr.Unmap().As4()
			s.b.add(head, body, unsafe.Pointer(&s.sa4[i]), unix.SizeofSockaddrInet4)
		} else {
			s.sa6[i].Addr = p.Addr.As16()
			s.b.add(head, body, unsafe.Pointer(&s.sa6[i]), unix.SizeofSockaddrInet6)
		}
		if s.b.full() {
			sent += s.b.flush(d.fl)
		}
	}
	if s.b.n > 0 {
		sent += s.b.flush(d.fl)
	}
	d.cur, d.oe = nil, nil
	return sent
}

func (d *dualSock) fail(i int, err error) { report(d.oe, d.cur.slot[i], err) }

// open opens the IPv4 socket, then the IPv6 one. A kernel without IPv6
// leaves v6 nil (IPv6 messages are then reported as ErrFamily) instead of
// failing the transport.
func (d *dualSock) open(open4, open6 func() (*ipSock, error)) error {
	var err error
	if d.v4, err = open4(); err != nil {
		return err
	}
	d.v6, err = open6()
	if errors.Is(err, unix.EAFNOSUPPORT) {
		d.v6, err = nil, nil
	}
	if err != nil {
		d.v4.f.Close()
		return err
	}
	return nil
}

// Close closes both sockets.
func (d *dualSock) Close() error {
	var errs []error
	if d.v4 != nil {
		errs = append(errs, d.v4.f.Close())
	}
	if d.v6 != nil {
		errs = append(errs, d.v6.f.Close())
	}
	return errors.Join(errs...)
}
