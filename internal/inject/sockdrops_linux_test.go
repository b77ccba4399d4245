package inject

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSocketDrops: datagrams that find the receiver's buffer full are
// counted, as the kernel counts them in /proc/net/udp6 (the socket is
// dual-stack), and the count stays readable after Close.
func TestSocketDrops(t *testing.T) {
	l := newTestLab(t)
	r := openUnread(t, l.r)
	defer r.Close()
	if n := r.SocketDrops(); n != 0 {
		t.Fatalf("%d drops before any datagram", n)
	}
	// Nobody reads: 4 MiB of buffer fills with a few thousand datagrams.
	const sent = 30000
	in(t, l.r, func() error {
		c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(testPort))
		if err != nil {
			return err
		}
		defer c.Close()
		b := make([]byte, 64)
		for range sent {
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	var proc uint64
	in(t, l.r, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/udp6") // this thread's namespace
		proc = procUDPDrops(t, string(b), testPort)
		return err
	})
	got := r.SocketDrops()
	t.Logf("%d datagrams into an unread socket: %d dropped (/proc/net/udp6: %d)", sent, got, proc)
	if got == 0 || got >= sent || got != proc {
		t.Errorf("SocketDrops %d, /proc/net/udp6 %d: want the same count, above 0 and below %d", got, proc, sent)
	}
	r.Close()
	if after := r.SocketDrops(); after != got {
		t.Errorf("after Close: %d, want the last count %d", after, got)
	}
}

// procUDPDrops is the drops column (the last) of the socket bound to port.
func procUDPDrops(t *testing.T, table string, port int) uint64 {
	t.Helper()
	suffix := ":" + strings.ToUpper(strconv.FormatInt(int64(port), 16))
	for _, l := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 12 && strings.HasSuffix(f[1], suffix) {
			n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no socket on port %d in:\n%s", port, table)
	return 0
}
