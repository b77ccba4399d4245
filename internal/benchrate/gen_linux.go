//go:build linux

package benchrate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

// genBatch is the most frames one sendmmsg(2) carries.
const genBatch = 64

// Generator writes PTB frames from a router's eth0 to one MAC with
// sendmmsg(2) on an AF_PACKET socket, paced to a fixed rate.
type Generator struct {
	// Batch is the most frames one sendmmsg carries (1 to 64; 0: 64).
	Batch int

	fd   int
	tmpl *Template
	hdr  [ethLen]byte
	buf  []byte // genBatch frame slots
	slot int
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

// NewGenerator opens the socket in namespace ns on iface, addressed to dst.
func NewGenerator(ns, iface string, dst net.HardwareAddr, tmpl *Template) (*Generator, error) {
	g := &Generator{fd: -1, tmpl: tmpl, slot: ethLen + tmpl.Len()}
	err := netnsutil.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
		g.fd = fd
		copy(g.hdr[0:6], dst)
		copy(g.hdr[6:12], ifi.HardwareAddr)
		binary.BigEndian.PutUint16(g.hdr[12:], unix.ETH_P_IP)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generator in %s: %w", ns, err)
	}
	g.buf = make([]byte, genBatch*g.slot)
	g.hdrs = make([]unix.Mmsghdr, genBatch)
	g.iovs = make([]unix.Iovec, genBatch)
	for i := range g.hdrs {
		g.iovs[i].Base = &g.buf[i*g.slot]
		g.iovs[i].SetLen(g.slot)
		g.hdrs[i].Hdr.Iov = &g.iovs[i]
		g.hdrs[i].Hdr.SetIovlen(1)
	}
	return g, nil
}

// send writes n frames with indices first, first+1, ... and returns how many
// the kernel took (a full socket buffer counts as not taken).
func (g *Generator) send(first uint64, n int) (int, error) {
	for i := range n {
		f := g.buf[i*g.slot : (i+1)*g.slot]
		copy(f, g.hdr[:])
		g.tmpl.Put(f[ethLen:], first+uint64(i))
	}
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.hdrs[0])), uintptr(n), 0, 0, 0)
	if e != 0 {
		if e == unix.ENOBUFS || e == unix.EAGAIN {
			return 0, nil
		}
		return 0, e
	}
	return int(r), nil
}

// Run sends frames with indices first, first+1, ... at rate per second for
// d (rate 0: as fast as it can), bounded by max frames. It returns how many
// frames the kernel took, how many it refused, and how long it took.
func (g *Generator) Run(first uint64, rate float64, d time.Duration, max int) (sent, refused int, took time.Duration, err error) {
	start := time.Now()
	for sent+refused < max {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			break
		}
		want := max - sent - refused
		if rate > 0 {
			want = min(want, int(rate*el.Seconds())+1-sent-refused)
		}
		if want <= 0 {
			// Sleep until the next frame is due; timers are coarse, so
			// at high rates this sends in small bursts.
			next := time.Duration(float64(sent+refused) / rate * float64(time.Second))
			time.Sleep(next - el)
			continue
		}
		b := genBatch
		if g.Batch > 0 {
			b = min(g.Batch, genBatch)
		}
		n := min(want, b)
		k, err := g.send(first+uint64(sent+refused), n)
		if err != nil {
			return sent, refused, time.Since(start), err
		}
		sent += k
		refused += n - k
	}
	return sent, refused, time.Since(start), nil
}

// Close closes the socket.
func (g *Generator) Close() error {
	if g.fd < 0 {
		return errors.New("closed")
	}
	err := unix.Close(g.fd)
	g.fd = -1
	return err
}
