//go:build linux

package transport

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// BroadcastConfig configures the l2 broadcast transport.
type BroadcastConfig struct {
	// Iface is the Ethernet interface shared with the peers.
	Iface string
}

// Broadcast relays the original IP packet, unchanged, once to the Ethernet
// broadcast address ff:ff:ff:ff:ff:ff: one frame whatever the number of
// peers, and no neighbour resolution. Every host on the segment receives
// it, peers or not.
//
// Send is safe for concurrent use but serialised.
type Broadcast struct {
	mac  [6]byte
	conn *packet.Conn

	mu    sync.Mutex
	b     *batch
	hdr   [ethHeaderLen]byte
	errno error
	fail  func(int, error)
}

var _ Sender = (*Broadcast)(nil)

// NewBroadcast opens the broadcast transport on cfg.Iface, in the calling
// thread's network namespace.
func NewBroadcast(cfg BroadcastConfig) (*Broadcast, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("broadcast: netlink: %w", err)
	}
	defer h.Close()
	_, mac, conn, err := openPacket(h, cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	bc := &Broadcast{mac: mac, conn: conn, b: newBatch(rc, 1)}
	bc.fail = bc.onFail
	return bc, nil
}

// Name implements Sender.
func (bc *Broadcast) Name() string { return "broadcast" }

// Send implements Sender. It sends one frame if to holds at least one peer
// of m's family and returns 1, else it sends nothing and returns 0. If the
// frame cannot be sent, every peer of the family is reported.
func (bc *Broadcast) Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int {
	et := etherTypeFor(m.Family)
	n := 0
	for _, p := range to {
		if familyMatches(m.Family, p.Addr) {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	if et == 0 || len(m.Packet) == 0 {
		reportFamily(onErr, m.Family, to, ErrBadMessage)
		return 0
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	putEthernet(bc.hdr[:], broadcastMAC, bc.mac, et)
	bc.errno = nil
	bc.b.add(bc.hdr[:], m.Packet, nil, 0)
	sent := bc.b.flush(bc.fail)
	if bc.errno != nil {
		reportFamily(onErr, m.Family, to, bc.errno)
	}
	return sent
}

func (bc *Broadcast) onFail(_ int, err error) { bc.errno = err }

func reportFamily(onErr func(netip.Addr, error), f uint8, to []peers.Peer, err error) {
	for _, p := range to {
		if familyMatches(f, p.Addr) {
			report(onErr, p.Addr, err)
		}
	}
}

// Close closes the socket.
func (bc *Broadcast) Close() error { return bc.conn.Close() }
