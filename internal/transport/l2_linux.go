//go:build linux

package transport

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// L2Config configures the l2 unicast transport.
type L2Config struct {
	// Uplinks are the Ethernet interfaces shared with the peers. Each
	// peer's copy leaves through the one its neighbour entry lives on.
	Uplinks []string
	// Logger receives neighbour-resolution events; nil discards them.
	Logger *slog.Logger
	// NeighborRefresh is how often the MAC cache is reloaded from the
	// kernel's neighbour table; 0 means 30s.
	NeighborRefresh time.Duration
}

// L2 relays the original IP packet, unchanged, in an Ethernet frame unicast
// to each peer's MAC address. The receiver's kernel sees the router's packet
// exactly as if ECMP had delivered it there. A peer is reached by its MAC
// whatever the message's family, so a node known by its IPv4 address also
// gets the IPv6 messages.
//
// MACs come from the kernel's neighbour table, cached and refreshed by a
// background goroutine; a peer without a usable entry is reported as
// ErrNoMAC and resolved actively with a managed neighbour entry (see
// neigh_linux.go), so Send never waits for ARP or neighbour discovery.
//
// Send is safe for concurrent use but serialised; it is built for one caller.
type L2 struct {
	uplinks []uplink
	et      uint16 // EtherType of the message being sent

	table atomic.Pointer[neighTable]
	want  atomic.Pointer[[]netip.Addr] // the peers of the last SetPeers
	nb    *neighbours

	sendLoop
	closeOnce sync.Once
	closeErr  error
}

var _ Sender = (*L2)(nil)

func init() {
	register(Kind{
		Name: "l2", Link: true, AnyFamily: true,
		CopiesKnownBy: "source MAC is a peer's",
		Open: func(o Options) (Sender, error) {
			return NewL2(L2Config{Uplinks: o.Uplinks, Logger: o.logger()})
		},
	})
}

// NewL2 opens the l2 transport on cfg.Uplinks. Its sockets (AF_PACKET and
// netlink) are opened in the calling thread's network namespace and stay
// there.
func NewL2(cfg L2Config) (*L2, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refresh := cfg.NeighborRefresh
	if refresh <= 0 {
		refresh = 30 * time.Second
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("l2: netlink: %w", err)
	}
	ups, socks, err := openUplinks(h, cfg.Uplinks)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("l2: %w", err)
	}
	l := &L2{uplinks: ups}
	l.init(l, socks...)
	l.table.Store(&neighTable{})
	links := make(map[int]string, len(ups))
	for _, u := range ups {
		links[u.ifindex] = u.name
	}
	l.nb = startNeighbours(h, links, refresh, log, &l.table)
	return l, nil
}

// Name implements Sender.
func (l *L2) Name() string { return "l2" }

// Send implements Sender: one frame per peer with a known MAC, handed to the
// kernel in batches with sendmmsg(2). It does not allocate.
func (l *L2) Send(m *ptb.Message, to []peers.Peer, onErr func(peer int, err error)) int {
	return l.send(m, to, onErr)
}

func (l *L2) begin(m *ptb.Message) error {
	l.et = etherTypeFor(m.Family)
	if l.et == 0 || len(m.Packet) == 0 {
		return ErrBadMessage
	}
	return nil
}

// pick finds the peer's MAC and the uplink its neighbour entry lives on,
// resolved through the peer's first address (IPv4 if it has one): any of a
// node's addresses names the same MAC.
func (l *L2) pick(_ *ptb.Message, _ int, p *peers.Peer) (target, error) {
	a := p.Addr()
	e, ok := l.table.Load().m[a]
	if !ok || e.err != nil {
		// Ask again whatever the reason: an unreachable peer may be
		// reachable now. The refresher looks at most once per gap.
		l.nb.want(a)
		if ok {
			return target{}, e.err
		}
		return target{}, ErrNoMAC
	}
	for k := range l.uplinks {
		if l.uplinks[k].ifindex == e.ifindex {
			return target{sock: k, mac: e.mac}, nil
		}
	}
	return target{}, ErrNotOnLink
}

func (l *L2) frame(s *sock, i int, m *ptb.Message, t target) (head, body []byte) {
	h := s.head(i)
	putEthernet(h, t.mac, l.uplinks[t.sock].mac, l.et)
	return h, m.Packet
}

// SetPeers tells l2 the current peer set so that it resolves their MACs
// before the first relay and PeerMACs knows them from the start. Without it,
// l2 learns peers from Send. The slice is copied.
func (l *L2) SetPeers(ps []peers.Peer) {
	addrs := make([]netip.Addr, len(ps))
	for i, p := range ps {
		addrs[i] = p.Addr()
	}
	l.want.Store(&addrs)
	l.nb.setPeers(addrs)
}

// PeerMACs implements Sender: the MAC addresses of the peers l2 knows,
// and never those of other neighbours such as routers. The slice is shared
// and must not be modified; it does not allocate.
func (l *L2) PeerMACs() [][6]byte { return l.table.Load().macs }

// Unresolved lists the tracked peers that have no usable MAC yet, with why.
// Peers given to SetPeers count even before the refresher first looked at them.
func (l *L2) Unresolved() map[netip.Addr]error {
	var out map[netip.Addr]error
	add := func(a netip.Addr, err error) {
		if out == nil {
			out = map[netip.Addr]error{}
		}
		out[a] = err
	}
	t := l.table.Load()
	if want := l.want.Load(); want != nil {
		for _, a := range *want {
			if e, ok := t.m[a]; !ok {
				add(a, ErrNoMAC)
			} else if e.err != nil {
				add(a, e.err)
			}
		}
	}
	for a, e := range t.m {
		if e.err != nil {
			add(a, e.err)
		}
	}
	return out
}

// Close stops the neighbour refresher, deletes the managed neighbour
// entries it created, and closes the sockets.
func (l *L2) Close() error {
	l.closeOnce.Do(func() {
		l.nb.stop()
		l.closeErr = l.sendLoop.Close()
	})
	return l.closeErr
}
