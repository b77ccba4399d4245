//go:build linux

package capture

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/sockopt"
)

// Receive batching: one recvmmsg(2) takes up to rxBatch datagrams (one
// logged packet each, as the queue threshold is 1). A slot holds the
// largest message the copy range allows (64 KiB payload plus attributes),
// so nothing is ever truncated; pages the kernel never writes stay out of
// the resident set.
const (
	rxBatch = 16
	rxSlot  = 66 << 10
)

// nfsock is one NFLOG netlink socket bound to a group. It is read through
// the Go netpoller, many datagrams per system call, into buffers allocated
// once; closing its file wakes a pending read safely (no fd reuse race).
type nfsock struct {
	f     *os.File
	rc    syscall.RawConn
	group uint16
	seq   uint32

	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	buf  []byte

	// State of the read in progress, shared with readFn and pollFn (built
	// once so a read does not allocate a closure).
	n      int
	errno  unix.Errno
	readFn func(fd uintptr) bool
	pollFn func(fd uintptr) bool
}

// openNFSock opens the socket in the namespace nsFd (0: the current one),
// binds group and asks for whole packets, at once (queue threshold 1), with
// sequence numbers.
func openNFSock(nsFd int, group uint16, rcvbuf int) (*nfsock, error) {
	var fd int
	open := func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		return err
	}
	var err error
	if nsFd > 0 {
		err = netnsutil.Do(netns.NsHandle(nsFd), open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, fmt.Errorf("capture: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: bind netlink socket: %w", err)
	}
	if err := sockopt.SetReceiveBuffer(fd, rcvbuf); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: nflog group %d: set receive buffer to %d: %w", group, rcvbuf, err)
	}
	s := &nfsock{f: os.NewFile(uintptr(fd), "nflog"), group: group}
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, err
	}
	s.initBuffers()
	if err := s.request(nla{nfulaCfgCmd, []byte{nfulnlCfgCmdBind}}); err != nil {
		s.f.Close()
		return nil, bindError(group, err)
	}
	// Flush every packet at once whatever the rule says (the kernel's
	// default batches for up to a second), and a zero flush timeout as well
	// should a rule's own threshold be larger; sequence numbers let us
	// count messages lost to overruns.
	err = s.request(cfgMode(snaplen),
		nla{nfulaCfgQThresh, be32(1)},
		nla{nfulaCfgTimeout, be32(0)},
		nla{nfulaCfgFlags, []byte{0, nfulnlCfgFSeq}})
	if err != nil {
		s.f.Close()
		return nil, fmt.Errorf("capture: configure nflog group %d: %w", group, err)
	}
	return s, nil
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func (s *nfsock) initBuffers() {
	s.hdrs = make([]unix.Mmsghdr, rxBatch)
	s.iovs = make([]unix.Iovec, rxBatch)
	s.buf = make([]byte, rxBatch*rxSlot)
	for i := range s.hdrs {
		s.iovs[i].Base = &s.buf[i*rxSlot]
		s.iovs[i].SetLen(rxSlot)
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	s.readFn = func(fd uintptr) bool { return s.recvmmsg(fd) != unix.EAGAIN }
	s.pollFn = func(fd uintptr) bool { s.recvmmsg(fd); return true }
}

// request sends one configuration request and waits for its
// acknowledgement. Packets that arrive meanwhile (a restart under traffic)
// are skipped; their sequence numbers make them count as lost.
func (s *nfsock) request(attrs ...nla) error {
	s.seq++
	msg := configMsg(nil, s.seq, s.group, attrs...)
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err = errors.Join(err, serr); err != nil {
		return err
	}
	s.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer s.f.SetReadDeadline(time.Time{})
	for {
		n, err := s.read()
		if errors.Is(err, unix.ENOBUFS) {
			continue // logged packets overflowed the buffer; the answer still comes
		}
		if err != nil {
			return err
		}
		for i := range n {
			r := nlReader{b: s.datagram(i)}
			for {
				typ, seq, body, ok, err := r.next()
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				if typ == nlmsgError && seq == s.seq {
					return nlError(body)
				}
			}
		}
	}
}

// read waits for at least one datagram and returns how many it took (at
// most rxBatch). ENOBUFS means the kernel dropped messages: the socket is
// still good.
func (s *nfsock) read() (int, error) { return s.receive(s.readFn) }

// poll is read without waiting: 0 when nothing is queued. The caller keeps
// its CPU busy instead of parking in the netpoller (busy polling). Going
// through RawConn keeps the fd referenced, so a concurrent close cannot
// hand its number to another file under us; after close it fails.
func (s *nfsock) poll() (int, error) { return s.receive(s.pollFn) }

func (s *nfsock) receive(fn func(fd uintptr) bool) (int, error) {
	if err := s.rc.Read(fn); err != nil {
		return 0, err
	}
	if s.errno != 0 && s.errno != unix.EAGAIN {
		return 0, s.errno
	}
	return s.n, nil
}

// recvmmsg takes what is queued, up to rxBatch datagrams, into s.n or
// s.errno, and returns the errno (EAGAIN: nothing queued).
func (s *nfsock) recvmmsg(fd uintptr) unix.Errno {
	s.n, s.errno = 0, 0
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Flags = 0
		s.hdrs[i].Len = 0
	}
	// A raw system call: with MSG_DONTWAIT it cannot block, so it need not
	// tell the scheduler (see transport's sendmmsg).
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), rxBatch, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case unix.EINTR:
		return s.recvmmsg(fd)
	case 0:
		s.n = int(r)
	default:
		s.errno = e
	}
	return e
}

// datagram is the i-th datagram of the last read.
func (s *nfsock) datagram(i int) []byte {
	return s.buf[i*rxSlot : i*rxSlot+min(int(s.hdrs[i].Len), rxSlot)]
}

// deadline sets a read deadline, if t is not zero: the read that passes it
// fails with os.ErrDeadlineExceeded (Config.Idle).
func (s *nfsock) deadline(t time.Time) {
	if !t.IsZero() {
		s.setDeadline(t)
	}
}

// setDeadline sets the read deadline; the zero time clears it. It fails
// only on a closed file, which the next read reports.
func (s *nfsock) setDeadline(t time.Time) { _ = s.f.SetReadDeadline(t) }

// close releases the socket, which unbinds the group.
func (s *nfsock) close() error { return s.f.Close() }

// hasNetAdmin reports whether this process holds CAP_NET_ADMIN, to tell
// "group taken" from "not permitted" (the kernel says EPERM for both).
func hasNetAdmin() bool {
	var d [2]unix.CapUserData
	if err := unix.Capget(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &d[0]); err != nil {
		return true // unknown: the kernel's answer stands
	}
	return d[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0
}
