//go:build linux

package transport

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mnl "github.com/mdlayher/netlink"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// L2Config configures the l2 unicast transport.
type L2Config struct {
	// Iface is the Ethernet interface shared with the peers.
	Iface string
	// Logger receives neighbour-resolution events; nil discards them.
	Logger *slog.Logger
	// NeighborRefresh is how often the MAC cache is reloaded from the
	// kernel's neighbour table; 0 means 30s.
	NeighborRefresh time.Duration
}

// L2 relays the original IP packet, unchanged, in an Ethernet frame unicast
// to each peer's MAC address on one interface. The receiver's kernel sees the
// router's packet exactly as if ECMP had delivered it there.
//
// MACs come from the kernel's neighbour table, cached and refreshed by a
// background goroutine; a peer without a usable entry is reported as
// ErrNoMAC and resolved actively with a managed neighbour entry (see
// neigh_linux.go), so Send never waits for ARP or neighbour discovery.
//
// Send is safe for concurrent use but serialised; it is built for one caller.
type L2 struct {
	ifindex int
	mac     [6]byte
	conn    *packet.Conn

	mu     sync.Mutex // guards the send state below
	b      *batch
	hdr    []byte       // one Ethernet header per batch slot
	slot   []netip.Addr // peer per batch slot, for error reports
	onErr  func(netip.Addr, error)
	failFn func(int, error)

	table atomic.Pointer[neighTable]
	want  atomic.Pointer[[]namedAddr] // the peers of the last SetPeers
	nb    *neighbours

	closeOnce sync.Once
	closeErr  error
}

var (
	_ Sender    = (*L2)(nil)
	_ MACSource = (*L2)(nil)
)

// NewL2 opens the l2 transport on cfg.Iface. Its sockets (AF_PACKET and
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
	nc, ev, err := dialNeigh()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("l2: netlink: %w", err)
	}
	ifindex, mac, conn, err := openPacket(h, cfg.Iface)
	if err != nil {
		nc.Close()
		ev.Close()
		h.Close()
		return nil, fmt.Errorf("l2: %w", err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		nc.Close()
		ev.Close()
		h.Close()
		return nil, fmt.Errorf("l2: %w", err)
	}
	l := &L2{
		ifindex: ifindex,
		mac:     mac,
		conn:    conn,
		b:       newBatch(rc, defaultBatch),
		hdr:     make([]byte, defaultBatch*ethHeaderLen),
		slot:    make([]netip.Addr, defaultBatch),
	}
	l.failFn = l.fail
	l.table.Store(&neighTable{})
	l.nb = startNeighbours(nc, ev, h, ifindex, cfg.Iface, refresh, log, &l.table)
	return l, nil
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

// openPacket opens a send-only AF_PACKET socket bound to iface.
//
// It is bound with protocol 0: Linux registers no packet handler for such a
// socket (packet(7): "If protocol is set to zero, no packets are
// received"), so it never queues received traffic and needs no drop-all BPF
// filter. SOCK_RAW lets us write the Ethernet header ourselves, so one
// bound socket serves every destination MAC without a per-send sockaddr,
// and Linux derives skb->protocol from our EtherType.
func openPacket(h *netlink.Handle, iface string) (int, [6]byte, *packet.Conn, error) {
	var mac [6]byte
	link, err := h.LinkByName(iface)
	if err != nil {
		return 0, mac, nil, fmt.Errorf("interface %q: %w", iface, err)
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return 0, mac, nil, fmt.Errorf("interface %q has no Ethernet address", iface)
	}
	copy(mac[:], attrs.HardwareAddr)
	ifi := &net.Interface{Index: attrs.Index, Name: attrs.Name, HardwareAddr: attrs.HardwareAddr, MTU: attrs.MTU}
	conn, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return 0, mac, nil, fmt.Errorf("AF_PACKET socket on %q: %w", iface, err)
	}
	return attrs.Index, mac, conn, nil
}

// Name implements Sender.
func (l *L2) Name() string { return "l2" }

// Send implements Sender: one frame per peer with a known MAC, handed to the
// kernel in batches with sendmmsg(2). It does not allocate.
func (l *L2) Send(m *ptb.Message, to []peers.Peer, onErr func(peer netip.Addr, err error)) int {
	et := etherTypeFor(m.Family)
	if et == 0 || len(m.Packet) == 0 {
		for _, p := range to {
			report(onErr, p.Addr, ErrBadMessage)
		}
		return 0
	}
	t := l.table.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onErr = onErr
	sent := 0
	for _, p := range to {
		if !familyMatches(m.Family, p.Addr) {
			report(onErr, p.Addr, ErrFamily)
			continue
		}
		e, ok := t.m[p.Addr]
		if !ok || e.err != nil {
			// Only a missing MAC is worth asking for; the refresher decides
			// whether an attempt is due (backoff).
			if !ok || e.err == ErrNoMAC {
				l.nb.want(p.Addr)
			}
			if ok {
				report(onErr, p.Addr, e.err)
			} else {
				report(onErr, p.Addr, ErrNoMAC)
			}
			continue
		}
		i := l.b.n
		h := l.hdr[i*ethHeaderLen : (i+1)*ethHeaderLen]
		putEthernet(h, e.mac, l.mac, et)
		l.slot[i] = p.Addr
		l.b.add(h, m.Packet, nil, 0)
		if l.b.full() {
			sent += l.b.flush(l.failFn)
		}
	}
	if l.b.n > 0 {
		sent += l.b.flush(l.failFn)
	}
	l.onErr = nil
	return sent
}

func (l *L2) fail(i int, err error) { report(l.onErr, l.slot[i], err) }

// SetPeers tells l2 the current peer set so that it resolves their MACs
// before the first relay and PeerMACs knows them from the start. Without it,
// l2 learns peers from Send. The slice is copied.
func (l *L2) SetPeers(ps []peers.Peer) {
	named := peerAddrs(ps)
	l.want.Store(&named)
	l.nb.setPeers(named)
}

// peerAddrs lists the addresses l2 resolves for ps, each with its node's
// name (per-peer state is reported by name).
func peerAddrs(ps []peers.Peer) []namedAddr {
	out := make([]namedAddr, 0, len(ps))
	for _, p := range ps {
		name := p.Name
		if name == "" {
			name = p.Addr.Unmap().String()
		}
		out = append(out, namedAddr{name: name, addr: p.Addr.Unmap()})
	}
	return out
}

// PeerMACs implements MACSource: the MAC addresses of the peers l2 knows,
// and never those of other neighbours such as routers. The slice is shared
// and must not be modified; it does not allocate.
func (l *L2) PeerMACs() [][6]byte { return l.table.Load().macs }

// Unresolved lists the tracked peers that have no usable MAC yet, with why.
// The daemon keeps readiness red while any is left: until a peer's MAC is
// known, its relayed copies cannot be told apart by their sender.
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
		for _, na := range *want {
			if e, ok := t.m[na.addr]; !ok {
				add(na.addr, ErrNoMAC)
			} else if e.err != nil {
				add(na.addr, e.err)
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

// PeerStates reports, per peer node (by name, sorted), whether l2 can reach
// it and why not: resolved, unresolved, failed (nobody answers; still
// retried with backoff), not_on_segment (its MAC is shared with another
// peer or the gateway: proxy ARP) or not_on_link (routed elsewhere).
// Peers given to SetPeers that the refresher has not looked at yet are
// unresolved. The refresher logs each change; StateChanged signals it.
func (l *L2) PeerStates() []PeerState {
	t := l.table.Load()
	out := t.peerStates()
	if want := l.want.Load(); want != nil {
		known := make(map[string]bool, len(out))
		for _, ps := range out {
			known[ps.Name] = true
		}
		for _, na := range *want {
			if _, ok := t.m[na.addr]; !ok && !known[na.name] {
				known[na.name] = true
				out = append(out, PeerState{Name: na.name, State: StateUnresolved, Addr: na.addr, Err: ErrNoMAC})
			}
		}
		slices.SortFunc(out, func(x, y PeerState) int { return strings.Compare(x.Name, y.Name) })
	}
	return out
}

// StateChanged receives a value after a peer's state changed (one pending
// value at most), so a caller can wait on it instead of polling PeerStates.
func (l *L2) StateChanged() <-chan struct{} { return l.nb.changed }

// Close stops the neighbour refresher, deletes the managed neighbour
// entries it created, and closes the sockets.
func (l *L2) Close() error {
	l.closeOnce.Do(func() {
		l.nb.stop()
		l.closeErr = l.conn.Close()
	})
	return l.closeErr
}

func report(onErr func(netip.Addr, error), a netip.Addr, err error) {
	if onErr != nil {
		onErr(a, err)
	}
}

func familyMatches(f uint8, a netip.Addr) bool {
	if a.Is4() {
		return f == 4
	}
	return f == 6 && a.Is6()
}
