//go:build linux

package transport

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// staticKeys is a KeySource whose keyring the test swaps.
type staticKeys struct{ ring *tunnelwire.Keyring }

func (s *staticKeys) Keyring() *tunnelwire.Keyring { return s.ring }

func testKeyring(t *testing.T, fill byte) *tunnelwire.Keyring {
	t.Helper()
	k, err := tunnelwire.NewKey(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	r, err := tunnelwire.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewTunnelNeedsAKey(t *testing.T) {
	if _, err := NewTunnel(TunnelConfig{}); !errors.Is(err, ErrNoTunnelKey) {
		t.Fatalf("NewTunnel without keys: %v, want ErrNoTunnelKey", err)
	}
}

// listenUDP opens a dual-stack UDP socket on port in namespace ns.
func listenUDP(t *testing.T, ns string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	in(t, ns, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{Port: port})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTunnelInNamespaces: n1 sends a PTB to n2 and n3 over the tunnel
// transport; each receives, on the tunnel port, one datagram from n1's
// address holding a header signed with the current key and the original
// packet byte for byte; the counter grows, the epoch stays, and a new
// keyring is used from the next message on.
func TestTunnelInNamespaces(t *testing.T) {
	l := newLab(t)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]
	const port = 30999
	keys := &staticKeys{testKeyring(t, 1)}
	var tu *Tunnel
	in(t, n1.ns, func() error {
		var err error
		tu, err = NewTunnel(TunnelConfig{Port: port, Keys: keys})
		return err
	})
	t.Cleanup(func() { tu.Close() })
	if tu.Name() != "tunnel" {
		t.Errorf("Name() = %q", tu.Name())
	}
	c2, c3 := listenUDP(t, n2.ns, port), listenUDP(t, n3.ns, port)

	var last tunnelwire.Header
	for _, f := range []uint8{4, 6} {
		if f == 6 {
			keys.ring = testKeyring(t, 2) // a reloaded key file
		}
		open := tunnelwire.NewOpener(keys.ring)
		m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.7", 6: "2001:db8:1::7"}[f]), 4007, 1400)
		// n2 is known only by its address of the other family: the
		// datagram goes there, carrying this family's packet.
		other := 10 - f
		to := []peers.Peer{n2.peer(other), n3.peer(f)}
		el := &errLog{}
		if got := tu.Send(m, to, el.on(to)); got != 2 {
			t.Fatalf("v%d: Send = %d, want 2; errors %v", f, got, el.errs)
		}
		for k, c := range []*net.UDPConn{c2, c3} {
			buf := make([]byte, 2048)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("v%d: %v", f, err)
			}
			if src := n1.addr([]uint8{other, f}[k]); from.Addr().Unmap() != src {
				t.Errorf("v%d: datagram from %v, want n1 %v", f, from, src)
			}
			var h tunnelwire.Header
			pkt, err := open.Open(buf[:n], &h)
			if err != nil || h.Family != f || !bytes.Equal(pkt, m.Packet) {
				t.Fatalf("v%d: Open = %v, family %d; want the original %d-byte packet", f, err, h.Family, len(m.Packet))
			}
			if age := time.Now().UnixMilli() - h.Timestamp; age < 0 || age > 2000 {
				t.Errorf("v%d: timestamp %d ms old", f, age)
			}
			if last.Counter != 0 && (h.Epoch != last.Epoch || h.Counter <= last.Counter-1) {
				t.Errorf("v%d: epoch/counter %x/%d after %x/%d", f, h.Epoch, h.Counter, last.Epoch, last.Counter)
			}
			last = h
		}
	}
	if last.Counter != 2 {
		t.Errorf("counter %d after two messages, want 2", last.Counter)
	}

	// Two messages in one batch share the sendmmsg calls: each datagram
	// still carries its own message's sealed header.
	keys.ring = testKeyring(t, 1)
	open := tunnelwire.NewOpener(keys.ring)
	ms := []Outgoing{
		{M: ptbMessage(4, netip.MustParseAddr("198.51.100.9"), 4009, 1400), To: []peers.Peer{n2.peer(4)}},
		{M: ptbMessage(6, netip.MustParseAddr("2001:db8:1::9"), 4010, 1280), To: []peers.Peer{n2.peer(4)}},
	}
	if got := tu.SendBatch(ms, func(j, i int, err error) { t.Errorf("message %d peer %d: %v", j, i, err) }); got != 2 || ms[0].Sent != 1 || ms[1].Sent != 1 {
		t.Fatalf("SendBatch = %d, Sent %d and %d; want 2, 1 and 1", got, ms[0].Sent, ms[1].Sent)
	}
	for j := range ms {
		buf := make([]byte, 2048)
		c2.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c2.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var h tunnelwire.Header
		pkt, err := open.Open(buf[:n], &h)
		if err != nil || h.Family != ms[j].M.Family || !bytes.Equal(pkt, ms[j].M.Packet) {
			t.Fatalf("batched message %d: Open = %v, family %d; want its own %d-byte packet", j, err, h.Family, len(ms[j].M.Packet))
		}
	}

	// The sending socket never queues what is sent back to it.
	if got := tu.Send(ptbMessage(4, netip.MustParseAddr("198.51.100.8"), 4008, 1400), []peers.Peer{n2.peer(4)}, nil); got != 1 {
		t.Fatalf("Send = %d", got)
	}
	buf := make([]byte, 2048)
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, from, err := c2.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.WriteToUDPAddrPort([]byte("reply"), from); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the reply crosses two veths
	var queued int
	raw, _ := tu.socks[0].f.SyscallConn()
	raw.Control(func(fd uintptr) {
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	if err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Errorf("the tunnel's sending socket queued %d bytes sent back to it", queued)
	}
}
