//go:build linux

package transport

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// BroadcastConfig configures the l2 broadcast transport.
type BroadcastConfig struct {
	// Uplinks are the Ethernet interfaces shared with the peers.
	Uplinks []string
}

// Broadcast relays the original IP packet, unchanged, once per uplink to the
// Ethernet broadcast address ff:ff:ff:ff:ff:ff: one frame per uplink
// whatever the number of peers, and no neighbour resolution. Every host on
// the segments receives it, peers or not.
//
// Send is safe for concurrent use but serialised.
type Broadcast struct {
	uplinks []uplink
	targets []peers.Peer // one per uplink: what the send loop iterates
	et      uint16
	failed  error
	fail    func(int, error)
	stateless
	sendLoop
}

var _ Sender = (*Broadcast)(nil)

func init() {
	register(Kind{
		Name: "broadcast", Link: true, AnyFamily: true,
		CopiesKnownBy: "sent to the L2 broadcast address",
		Open: func(o Options) (Sender, error) {
			return NewBroadcast(BroadcastConfig{Uplinks: o.Uplinks})
		},
	})
}

// NewBroadcast opens the broadcast transport on cfg.Uplinks, in the calling
// thread's network namespace.
func NewBroadcast(cfg BroadcastConfig) (*Broadcast, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("broadcast: netlink: %w", err)
	}
	defer h.Close()
	ups, socks, err := openUplinks(h, cfg.Uplinks)
	if err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	bc := &Broadcast{uplinks: ups, targets: make([]peers.Peer, len(ups))}
	bc.fail = func(_ int, err error) { bc.failed = err }
	bc.init(bc, socks...)
	return bc, nil
}

// Name implements Sender.
func (bc *Broadcast) Name() string { return "broadcast" }

// Send implements Sender. With at least one peer it sends one frame out of
// each uplink and returns how many the kernel took; if one cannot be sent,
// every peer is reported.
func (bc *Broadcast) Send(m *ptb.Message, to []peers.Peer, onErr func(peer int, err error)) int {
	if len(to) == 0 {
		return 0
	}
	bc.failed = nil
	sent := bc.send(m, bc.targets, bc.fail)
	if bc.failed != nil {
		reportAll(onErr, len(to), bc.failed)
	}
	return sent
}

// SendBatch implements Sender: as Send for each message in turn (one frame
// per uplink and message; there is no per-peer fan-out to share calls).
func (bc *Broadcast) SendBatch(ms []Outgoing, onErr func(msg, peer int, err error)) int {
	sent := 0
	for j := range ms {
		ms[j].Sent = 0
		if len(ms[j].To) == 0 {
			continue
		}
		bc.failed = nil
		ms[j].Sent = bc.send(ms[j].M, bc.targets, bc.fail)
		for i := range ms[j].To {
			if bc.failed != nil && onErr != nil {
				onErr(j, i, bc.failed)
			}
		}
		sent += ms[j].Sent
	}
	return sent
}

func (bc *Broadcast) begin(m *ptb.Message) error {
	bc.et = etherTypeFor(m.Family)
	if bc.et == 0 || len(m.Packet) == 0 {
		return ErrBadMessage
	}
	return nil
}

func (bc *Broadcast) pick(_ *ptb.Message, i int, _ *peers.Peer) (target, error) {
	return target{sock: i, mac: broadcastMAC}, nil
}

func (bc *Broadcast) frame(s *sock, i int, m *ptb.Message, t target) (head, body []byte) {
	h := s.head(i)
	putEthernet(h, t.mac, bc.uplinks[t.sock].mac, bc.et)
	return h, m.Packet
}
