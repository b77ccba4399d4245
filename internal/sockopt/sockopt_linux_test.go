package sockopt

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDrops fills a small, unread UDP socket on loopback: the datagrams
// that find it full are counted, the others are not.
func TestDrops(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096); err != nil { // the kernel's floor, about 4 KiB
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	if n, err := Drops(fd); err != nil || n != 0 {
		t.Fatalf("Drops before any datagram = %d, %v", n, err)
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 200
	for range sent {
		if _, err := c.Write(make([]byte, 64)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Drops(fd)
	if err != nil || n == 0 || n >= sent {
		t.Fatalf("Drops after %d datagrams into a full socket = %d, %v: want some, not all", sent, n, err)
	}
	t.Logf("%d of %d dropped", n, sent)
}

// TestSetReceiveBuffer: the buffer is set past net.core.rmem_max when the
// process may (root), else to at most rmem_max; the kernel reports twice
// what was set.
func TestSetReceiveBuffer(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := 2 * rmemMax // only SO_RCVBUFFORCE gets past rmem_max
	if err := SetReceiveBuffer(fd, want); err != nil {
		t.Fatal(err)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		t.Fatal(err)
	}
	if unix.Geteuid() == 0 && got < 2*want {
		t.Errorf("as root: receive buffer %d, want %d (twice what was set)", got, 2*want)
	}
	t.Logf("asked for %d (rmem_max %d): receive buffer %d", want, rmemMax, got)
}
