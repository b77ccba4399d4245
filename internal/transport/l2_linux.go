//go:build linux

package transport

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mnl "github.com/mdlayher/netlink"
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
// MACs come from the kernel's neighbour table, one resolver per uplink
// (neigh_linux.go), each caching and refreshing its own table; a peer
// without a usable entry is reported as ErrNoMAC and resolved actively with
// a managed neighbour entry, so Send never waits for ARP or neighbour
// discovery.
//
// Send is safe for concurrent use but serialised; it is built for one caller.
type L2 struct {
	uplinks []uplink
	et      uint16 // EtherType of the message being sent

	tables  []atomic.Pointer[neighTable] // per uplink
	nbs     []*neighbours                // per uplink
	route   *netlink.Handle              // assigns peers to uplinks (several uplinks only)
	want    atomic.Pointer[[]namedAddr]  // the peers of the last SetPeers
	changed chan struct{}                // a peer's state changed on some uplink

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
	l := &L2{uplinks: ups, route: h, changed: make(chan struct{}, 1),
		tables: make([]atomic.Pointer[neighTable], len(ups))}
	l.init(l, socks...)
	for k, u := range ups {
		l.tables[k].Store(&neighTable{})
		nb, err := l.startResolver(u, refresh, log, k)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("l2: netlink: %w", err)
		}
		l.nbs = append(l.nbs, nb)
	}
	return l, nil
}

// startResolver opens one uplink's netlink sockets and starts its resolver.
func (l *L2) startResolver(u uplink, refresh time.Duration, log *slog.Logger, k int) (*neighbours, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	nc, ev, err := dialNeigh()
	if err != nil {
		h.Close()
		return nil, err
	}
	return startNeighbours(nc, ev, h, u.ifindex, u.name, refresh, log, &l.tables[k], l.changed), nil
}

// dialNeigh opens the netlink sockets for neighbour requests and for
// neighbour notifications.
func dialNeigh() (req, ev *mnl.Conn, err error) {
	if req, err = mnl.Dial(unix.NETLINK_ROUTE, nil); err != nil {
		return nil, nil, err
	}
	if ev, err = dialNeighEvents(); err != nil {
		req.Close()
		return nil, nil, err
	}
	return req, ev, nil
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

// pick finds a usable MAC for the peer, through either of its addresses,
// on the uplink whose resolver has it: any of a node's addresses names the
// same MAC. Without one it reports the first reason found.
func (l *L2) pick(_ *ptb.Message, _ int, p *peers.Peer) (target, error) {
	var why error
	for k := range l.tables {
		t := l.tables[k].Load()
		for _, a := range [2]netip.Addr{p.V4, p.V6} {
			if !a.IsValid() {
				continue
			}
			e, ok := t.m[a]
			if ok && e.err == nil {
				return target{sock: k, mac: e.mac}, nil
			}
			if ok && why == nil {
				why = e.err
			}
		}
	}
	if why == nil || why == ErrNoMAC {
		// Only a missing MAC is worth asking for; the resolver decides
		// whether an attempt is due (backoff).
		for _, nb := range l.nbs {
			nb.want(p.Addr())
		}
		return target{}, ErrNoMAC
	}
	return target{}, why
}

func (l *L2) frame(s *sock, i int, m *ptb.Message, t target) (head, body []byte) {
	h := s.head(i)
	putEthernet(h, t.mac, l.uplinks[t.sock].mac, l.et)
	return h, m.Packet
}

// SetPeers tells l2 the current peer set so that it resolves their MACs
// before the first relay and PeerMACs knows them from the start. With
// several uplinks each peer goes to the resolver of the uplink its route
// uses, so the others neither probe nor report it. The slice is copied.
func (l *L2) SetPeers(ps []peers.Peer) {
	named := peerAddrs(ps)
	l.want.Store(&named)
	if len(l.nbs) == 1 {
		l.nbs[0].setPeers(named)
		return
	}
	per := make([][]namedAddr, len(l.nbs))
	for _, na := range named {
		k := l.uplinkFor(na.addr)
		per[k] = append(per[k], na)
	}
	for k, nb := range l.nbs {
		if per[k] == nil {
			per[k] = []namedAddr{} // nil would mean "no update"
		}
		nb.setPeers(per[k])
	}
}

// uplinkFor is the uplink the route to a uses, or the first (whose
// resolver then reports why the peer cannot be reached).
func (l *L2) uplinkFor(a netip.Addr) int {
	routes, err := l.route.RouteGet(a.AsSlice())
	if err == nil && len(routes) > 0 {
		for k, u := range l.uplinks {
			if u.ifindex == routes[0].LinkIndex {
				return k
			}
		}
	}
	return 0
}

// peerAddrs lists the addresses l2 resolves for ps, each with its node's
// name (per-peer state is reported by name): both of a dual-stack node's.
func peerAddrs(ps []peers.Peer) []namedAddr {
	out := make([]namedAddr, 0, len(ps))
	for _, p := range ps {
		for _, a := range [2]netip.Addr{p.V4, p.V6} {
			if a.IsValid() {
				out = append(out, namedAddr{name: p.Name, addr: a})
			}
		}
	}
	return out
}

// PeerMACs implements Sender: the MAC addresses of the peers l2 knows, and
// never those of other neighbours such as routers or a proxy-ARP gateway.
// With one uplink the slice is shared, must not be modified and costs no
// allocation.
func (l *L2) PeerMACs() [][6]byte {
	if len(l.tables) == 1 {
		return l.tables[0].Load().macs
	}
	var out [][6]byte
	for k := range l.tables {
		out = append(out, l.tables[k].Load().macs...)
	}
	return out
}

// PeerStates reports, per peer node (by name, sorted), whether l2 can reach
// it and why not: resolved, unresolved, failed (nobody answers; still
// retried with backoff), not_on_segment (its MAC is shared with another
// peer or the gateway: proxy ARP) or not_on_link (routed elsewhere); with
// several uplinks, the best over them. Peers given to SetPeers that no
// resolver has looked at yet are unresolved. The resolvers log each
// change; StateChanged signals it.
func (l *L2) PeerStates() []PeerState {
	best := map[string]PeerState{}
	seen := map[netip.Addr]bool{}
	for k := range l.tables {
		for a := range l.tables[k].Load().m {
			seen[a] = true
		}
		for _, ps := range l.tables[k].Load().peerStates() {
			if cur, ok := best[ps.Name]; !ok || betterState(ps, cur) {
				best[ps.Name] = ps
			}
		}
	}
	if want := l.want.Load(); want != nil {
		for _, na := range *want {
			if _, ok := best[na.name]; !ok && !seen[na.addr] {
				best[na.name] = PeerState{Name: na.name, State: StateUnresolved, Addr: na.addr, Err: ErrNoMAC}
			}
		}
	}
	out := make([]PeerState, 0, len(best))
	for _, ps := range best {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(x, y PeerState) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// StateChanged receives a value after a peer's state changed (one pending
// value at most), so a caller can wait on it instead of polling PeerStates.
func (l *L2) StateChanged() <-chan struct{} { return l.changed }

// Close stops the neighbour resolvers, deletes the managed neighbour
// entries they created, and closes the sockets.
func (l *L2) Close() error {
	l.closeOnce.Do(func() {
		for _, nb := range l.nbs {
			nb.stop()
		}
		l.route.Close()
		l.closeErr = l.sendLoop.Close()
	})
	return l.closeErr
}
