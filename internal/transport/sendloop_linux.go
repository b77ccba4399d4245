//go:build linux

package transport

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// sock is one send-only socket with its sendmmsg batch and per-slot state:
// a header buffer per slot (for headers built per peer), a destination
// sockaddr per slot (unbound IP sockets only) and the peer each slot is for,
// so a failed slot is reported against the right peer in O(1).
type sock struct {
	f      *os.File
	b      *batch
	hdrLen int
	hdr    []byte
	sa4    []unix.RawSockaddrInet4
	sa6    []unix.RawSockaddrInet6
	slot   []slotRef
	fail   func(int, error) // built once: reports slot i's peer
}

// slotRef names the message (index in the batch being sent) and the peer
// (index in that message's recipients) a queued frame is for.
type slotRef struct{ msg, peer int32 }

// sendTimeout bounds how long a send waits for room in a full send buffer;
// the frames it could not queue then fail with EAGAIN.
const sendTimeout = time.Second

// newSock wraps fd, a blocking socket. It is kept out of the runtime
// poller on purpose: a socket in epoll has a waiter on its wait queue, so
// every frame's release (on veth, inside our own sendmmsg) ran the
// write-space wake-up and woke the poller's thread, per frame. A full send
// buffer (rare: frames leave as fast as the device takes them) blocks the
// sending thread in the system call instead, for at most sendTimeout.
// Closing the file while a send is in progress is safe: the descriptor is
// released once the send returns. family is the family of the destinations
// written per slot (0: the socket is bound to its destination, e.g.
// AF_PACKET); port, in host order, is written into every sockaddr.
func newSock(fd, family int, name string, hdrLen int, port uint16) (*sock, error) {
	tv := unix.NsecToTimeval(int64(sendTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt(SO_SNDTIMEO)", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &sock{
		f: f, b: newBatch(rc, defaultBatch), hdrLen: hdrLen,
		hdr:  make([]byte, defaultBatch*hdrLen),
		slot: make([]slotRef, defaultBatch),
	}
	nport := [2]byte{byte(port >> 8), byte(port)}
	switch family {
	case unix.AF_INET:
		s.sa4 = make([]unix.RawSockaddrInet4, defaultBatch)
		for i := range s.sa4 {
			s.sa4[i].Family = unix.AF_INET
			*(*[2]byte)(unsafe.Pointer(&s.sa4[i].Port)) = nport
		}
	case unix.AF_INET6:
		s.sa6 = make([]unix.RawSockaddrInet6, defaultBatch)
		for i := range s.sa6 {
			s.sa6[i].Family = unix.AF_INET6
			*(*[2]byte)(unsafe.Pointer(&s.sa6[i].Port)) = nport
		}
	}
	return s, nil
}

// head is slot i's header buffer.
func (s *sock) head(i int) []byte { return s.hdr[i*s.hdrLen : (i+1)*s.hdrLen] }

// queue adds slot i's frame: head then body, to dst when the socket is unbound.
func (s *sock) queue(i int, head, body []byte, dst netip.Addr) {
	switch {
	case s.sa4 != nil:
		s.sa4[i].Addr = dst.Unmap().As4()
		s.b.add(head, body, unsafe.Pointer(&s.sa4[i]), unix.SizeofSockaddrInet4)
	case s.sa6 != nil:
		s.sa6[i].Addr = dst.As16()
		s.b.add(head, body, unsafe.Pointer(&s.sa6[i]), unix.SizeofSockaddrInet6)
	default:
		s.b.add(head, body, nil, 0)
	}
}

// target is where one peer's copy goes: which socket, to which address or MAC.
type target struct {
	sock int
	addr netip.Addr // unbound IP sockets: the destination
	mac  [6]byte    // AF_PACKET sockets: the destination MAC
}

// framer is what a transport adds to the shared send loop.
type framer interface {
	// begin checks m once per message (and may precompute what every
	// peer's copy shares); an error is reported for every peer.
	begin(m *ptb.Message) error
	// pick chooses the socket and destination of peer i's copy, or the
	// error to report for that peer.
	pick(m *ptb.Message, i int, p *peers.Peer) (target, error)
	// frame fills slot i of s for t and returns the header and body.
	frame(s *sock, i int, m *ptb.Message, t target) (head, body []byte)
}

// sendLoop is the one batched fan-out every transport uses: per message
// and peer, pick a socket and a destination, frame the copy into that
// socket's batch, and flush full batches with sendmmsg(2); the frames of
// all the messages of one SendBatch share the system calls. It does not
// allocate. Send and SendBatch are safe for concurrent use but serialised.
type sendLoop struct {
	fr    framer
	socks []*sock

	mu sync.Mutex
	// Of the send in progress, for the socks' fail: the messages, and who
	// hears of a failure (onErr1 for Send, onErrN for SendBatch).
	cur    []Outgoing
	one    [1]Outgoing
	onErr1 func(int, error)
	onErrN func(int, int, error)
}

// init wires the sockets' failure reports; call once they are open.
func (l *sendLoop) init(fr framer, socks ...*sock) {
	l.fr, l.socks = fr, socks
	for _, s := range socks {
		if s == nil {
			continue
		}
		s.fail = func(i int, err error) {
			r := s.slot[i]
			l.cur[r.msg].Sent--
			l.report(int(r.msg), int(r.peer), err)
		}
	}
}

func (l *sendLoop) report(msg, peer int, err error) {
	switch {
	case l.onErrN != nil:
		l.onErrN(msg, peer, err)
	case l.onErr1 != nil:
		l.onErr1(peer, err)
	}
}

func (l *sendLoop) send(m *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.one[0] = Outgoing{M: m, To: to}
	l.onErr1 = onErr
	n := l.run(l.one[:])
	l.one[0], l.onErr1 = Outgoing{}, nil
	return n
}

// SendBatch implements Sender.SendBatch for every transport that frames
// each peer's copy itself.
func (l *sendLoop) SendBatch(ms []Outgoing, onErr func(msg, peer int, err error)) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onErrN = onErr
	n := l.run(ms)
	l.onErrN = nil
	return n
}

// run queues every frame of ms, flushing batches as they fill, then
// flushes the rest; each message's Sent counts its frames queued, less
// those the kernel refused.
func (l *sendLoop) run(ms []Outgoing) int {
	l.cur = ms
	for j := range ms {
		ms[j].Sent = 0
		l.queue(ms, j)
	}
	for _, s := range l.socks {
		if s != nil && s.b.n > 0 {
			s.b.flush(s.fail)
		}
	}
	l.cur = nil
	sent := 0
	for j := range ms {
		sent += ms[j].Sent
	}
	return sent
}

// queue frames message j for each of its peers.
func (l *sendLoop) queue(ms []Outgoing, j int) {
	m, to := ms[j].M, ms[j].To
	if err := l.fr.begin(m); err != nil {
		for i := range to {
			l.report(j, i, err)
		}
		return
	}
	for i := range to {
		t, err := l.fr.pick(m, i, &to[i])
		if err != nil {
			l.report(j, i, err)
			continue
		}
		s := l.socks[t.sock]
		k := s.b.n
		s.slot[k] = slotRef{msg: int32(j), peer: int32(i)}
		head, body := l.fr.frame(s, k, m, t)
		s.queue(k, head, body, t.addr)
		ms[j].Sent++
		if s.b.full() {
			s.b.flush(s.fail)
		}
	}
}

// Close closes every socket.
func (l *sendLoop) Close() error {
	var errs []error
	for _, s := range l.socks {
		if s != nil {
			errs = append(errs, s.f.Close())
		}
	}
	return errors.Join(errs...)
}

// openFamilies opens an IPv4 and an IPv6 socket. A kernel without IPv6
// leaves the second nil (IPv6 destinations are then ErrFamily) instead of
// failing the transport.
func openFamilies(open func(family int) (*sock, error)) (v4, v6 *sock, err error) {
	if v4, err = open(unix.AF_INET); err != nil {
		return nil, nil, err
	}
	v6, err = open(unix.AF_INET6)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return v4, nil, nil
	}
	if err != nil {
		v4.f.Close()
		return nil, nil, err
	}
	return v4, v6, nil
}

// familySock returns the index (0: IPv4, 1: IPv6) of the socket for a, or
// ErrFamily when that socket is missing.
func familySock(a netip.Addr, v6 *sock) (int, error) {
	if a.Is4() {
		return 0, nil
	}
	if v6 == nil {
		return 0, ErrFamily
	}
	return 1, nil
}
