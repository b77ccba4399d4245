//go:build linux

package transport

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// defaultBatch is how many messages one sendmmsg(2) carries at most.
const defaultBatch = 64

// batch sends up to cap messages with one sendmmsg(2) call. Each message is
// two iovecs: a small per-peer header (Ethernet, IPv4 or ICMPv6 head) and a
// body shared by all peers (the caller's packet, never copied), plus an
// optional destination address.
//
// All arrays are allocated once; add and flush do not allocate. A batch is
// not safe for concurrent use.
type batch struct {
	rc   syscall.RawConn
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	n    int // messages filled

	// State shared with write, which runs inside rc.Write.
	start int
	sent  int
	errno unix.Errno
	write func(fd uintptr) bool // built once so rc.Write does not allocate a closure
}

func newBatch(rc syscall.RawConn, size int) *batch {
	if size < 1 {
		size = 1
	}
	b := &batch{
		rc:   rc,
		hdrs: make([]unix.Mmsghdr, size),
		iovs: make([]unix.Iovec, 2*size),
	}
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Iov = &b.iovs[2*i]
	}
	b.write = b.sendmmsg
	return b
}

func (b *batch) full() bool { return b.n == len(b.hdrs) }

// add queues one message: head then body, to name (nil when the socket is
// bound or connected). name must point at memory that outlives flush.
func (b *batch) add(head, body []byte, name unsafe.Pointer, namelen uint32) {
	h := &b.hdrs[b.n]
	iov := b.iovs[2*b.n : 2*b.n+2]
	iov[0].Base, iov[1].Base = nil, nil
	iov[0].SetLen(len(head))
	if len(head) > 0 {
		iov[0].Base = &head[0]
	}
	iov[1].SetLen(len(body))
	if len(body) > 0 {
		iov[1].Base = &body[0]
	}
	h.Hdr.SetIovlen(2)
	h.Hdr.Name = (*byte)(name)
	h.Hdr.Namelen = namelen
	h.Len = 0
	b.n++
}

// flush hands the queued messages to the kernel and returns how many it
// accepted. For each message the kernel refused, fail is called with the
// message's index (in add order) and the error; the remaining messages are
// still sent, except after a send timeout (EAGAIN), which fails them all. The batch is empty afterwards and holds no pointers into the
// caller's buffers.
func (b *batch) flush(fail func(i int, err error)) int {
	total := 0
	b.start = 0
	// Each round either sends at least one message or fails exactly one, so
	// this ends after at most n rounds.
	for b.start < b.n {
		b.sent, b.errno = 0, 0
		if err := b.rc.Write(b.write); err != nil {
			fail(b.start, err) // socket closed or poller error
			b.start++
			continue
		}
		if b.errno == unix.EAGAIN {
			// The send timeout expired on a full buffer: the socket is
			// stuck, so the rest fails now rather than one timeout each.
			for ; b.start < b.n; b.start++ {
				fail(b.start, b.errno)
			}
			break
		}
		if b.errno != 0 {
			fail(b.start, b.errno)
			b.start++
			continue
		}
		total += b.sent
		b.start += b.sent
	}
	for i := 0; i < 2*b.n; i++ {
		b.iovs[i].Base = nil // do not retain the caller's packet
	}
	for i := 0; i < b.n; i++ {
		b.hdrs[i].Hdr.Name = nil
	}
	b.n = 0
	return total
}

// sendmmsg runs inside rc.Write, on a blocking socket outside the runtime
// poller (see newSock): it returns true once the call is done. EAGAIN is the
// send timeout expiring: the first unsent message fails with it.
func (b *batch) sendmmsg(fd uintptr) bool {
	// First without waiting, as a raw system call: it cannot block, so it
	// need not tell the scheduler (entering a system call wakes the
	// runtime's monitor thread whenever it sleeps, i.e. after every idle
	// spell). Only a full send buffer takes the blocking call.
	wait := false
	for {
		var r uintptr
		var e unix.Errno
		if wait {
			r, _, e = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[b.start])), uintptr(b.n-b.start), 0, 0, 0)
		} else {
			r, _, e = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[b.start])), uintptr(b.n-b.start), unix.MSG_DONTWAIT, 0, 0)
		}
		switch e {
		case unix.EAGAIN:
			if !wait {
				wait = true
				continue
			}
			b.errno = e
		case unix.EINTR:
			continue
		case 0:
			if r == 0 {
				// Not documented for sendmmsg; treat as a failure of the
				// first message so flush always makes progress.
				b.errno = unix.EIO
			}
			b.sent = int(r)
		default:
			b.errno = e
		}
		return true
	}
}
