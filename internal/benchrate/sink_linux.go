//go:build linux

package benchrate

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

const (
	sinkBatch = 64
	sinkSnap  = 128 // enough for the headers Index reads
	cmsgSpace = 64
)

// Sink captures PTB frames on one interface with an AF_PACKET socket and
// kernel receive timestamps (SO_TIMESTAMPNS), many per recvmmsg(2). It
// counts frames per phase (index >> PhaseShift) and, for phases marked
// with Record, keeps each index's timestamp.
type Sink struct {
	fd       int
	outgoing bool // count frames this host sent (a router) instead of received ones

	counts [256]atomic.Uint64
	record atomic.Int32 // phase whose timestamps are kept; -1: none

	mu    sync.Mutex
	times map[uint64]time.Time

	stop chan struct{}
	done chan struct{}
}

// NewSink opens the socket in namespace ns on iface. outgoing selects the
// frames this namespace sends (the router's side) rather than those it
// receives (a peer's side).
func NewSink(ns, iface string, outgoing bool) (*Sink, error) {
	s := &Sink{fd: -1, outgoing: outgoing, times: map[uint64]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	s.record.Store(-1)
	err := netnsutil.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL) // outgoing frames reach only ETH_P_ALL taps
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto))
		if err != nil {
			return err
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		return nil, fmt.Errorf("sink in %s: %w", ns, err)
	}
	go s.loop()
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Record keeps the timestamps of phase p's frames from now on, and only
// theirs: those of an earlier phase are forgotten.
func (s *Sink) Record(p int) {
	s.mu.Lock()
	clear(s.times)
	s.mu.Unlock()
	s.record.Store(int32(p))
}

// Count is the number of frames of phase p seen so far.
func (s *Sink) Count(p int) uint64 { return s.counts[p&0xff].Load() }

// Times returns a copy of the recorded timestamps by index.
func (s *Sink) Times() map[uint64]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]time.Time, len(s.times))
	for k, v := range s.times {
		out[k] = v
	}
	return out
}

// Drops is the kernel's count of frames this socket missed (PACKET_STATISTICS,
// reset by each call).
func (s *Sink) Drops() uint32 {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return st.Drops
}

type rxBufs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	data  []byte
	ctrl  []byte
	names []unix.RawSockaddrLinklayer
}

func newRxBufs() *rxBufs {
	b := &rxBufs{hdrs: make([]unix.Mmsghdr, sinkBatch), iovs: make([]unix.Iovec, sinkBatch),
		data: make([]byte, sinkBatch*sinkSnap), ctrl: make([]byte, sinkBatch*cmsgSpace),
		names: make([]unix.RawSockaddrLinklayer, sinkBatch)}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.data[i*sinkSnap]
		b.iovs[i].SetLen(sinkSnap)
		h := &b.hdrs[i].Hdr
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	return b
}

// reset re-arms the per-message lengths the kernel overwrote.
func (b *rxBufs) reset() {
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Control = &b.ctrl[i*cmsgSpace]
		h.SetControllen(cmsgSpace)
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Flags = 0
	}
}

// sinkPoll is how long the sink sleeps once its socket is empty. It polls
// instead of sleeping on the socket: a sleeping reader is woken for every
// frame, and on veth that wake-up runs in the sender's context, here the
// daemon's sendmmsg, and was charged to the daemon. Timestamps are the
// kernel's, taken on arrival, so the poll adds nothing to a latency.
const sinkPoll = time.Millisecond

func (s *Sink) loop() {
	defer close(s.done)
	b := newRxBufs()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		b.reset()
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.hdrs[0])), sinkBatch, unix.MSG_DONTWAIT, 0, 0)
		if e != 0 {
			time.Sleep(sinkPoll) // empty (EAGAIN) or EINTR
			continue
		}
		for i := range int(r) {
			s.take(b, i)
		}
	}
}

func (s *Sink) take(b *rxBufs, i int) {
	out := b.names[i].Pkttype == unix.PACKET_OUTGOING
	if out != s.outgoing {
		return
	}
	n := min(int(b.hdrs[i].Len), sinkSnap)
	f := b.data[i*sinkSnap : i*sinkSnap+n]
	if len(f) < ethLen || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP {
		return
	}
	idx, ok := Index(f[ethLen:])
	if !ok {
		return
	}
	p := int(idx >> PhaseShift)
	s.counts[p&0xff].Add(1)
	if int32(p) != s.record.Load() {
		return
	}
	ts, ok := timestamp(b.ctrl[i*cmsgSpace : i*cmsgSpace+int(b.hdrs[i].Hdr.Controllen)])
	if !ok {
		return
	}
	s.mu.Lock()
	s.times[idx] = ts
	s.mu.Unlock()
}

// timestamp finds SCM_TIMESTAMPNS in a control buffer.
func timestamp(c []byte) (time.Time, bool) {
	for len(c) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(c) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.SizeofCmsghdr+16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&c[unix.SizeofCmsghdr]))
			return time.Unix(ts.Sec, ts.Nsec), true
		}
		c = c[min(len(c), (l+7)&^7):]
	}
	return time.Time{}, false
}

// Close stops the capture and closes the socket.
func (s *Sink) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	return unix.Close(s.fd)
}
