//go:build linux

package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Active resolution.
//
// When a peer has no usable neighbour entry we do not craft ARP or neighbour
// solicitations. We ask the kernel to own the problem: an RTM_NEWNEIGH with
// NTF_EXT_MANAGED (Linux >= 5.16, `ip neigh replace ADDR dev IF managed`)
// makes the kernel resolve the entry at once and keep it resolved by
// re-probing it periodically, even when no traffic uses it. That also keeps
// the MAC fresh if a node is replaced, which a STALE entry would not.
// On older kernels the request fails and we fall back to NTF_USE, which
// triggers one resolution (the same as a packet sent to the address).
//
// We rejected the alternative of a zero-length UDP send: it needs a socket
// in the right network namespace at resolution time (the refresher is an
// ordinary goroutine and must not switch namespaces), and the resulting
// entry goes STALE again without traffic. The netlink handle was opened in
// the constructor's namespace, so everything here is namespace-safe.
//
// Managed entries l2 created are deleted when their peer leaves the set and
// on Close, so the kernel stops probing departed nodes.

// neighEntry is what l2 knows about one peer: a MAC and the uplink its
// entry lives on, or why there is none.
type neighEntry struct {
	mac     [6]byte
	ifindex int
	err     error // nil: mac is usable
}

// neighTable is an immutable snapshot read by Send without locking.
type neighTable struct {
	m    map[netip.Addr]neighEntry
	macs [][6]byte // usable peer MACs, deduplicated, for MACSource
}

// nudValid is the kernel's NUD_VALID: states whose link-layer address can be used.
const nudValid = netlink.NUD_PERMANENT | netlink.NUD_NOARP | netlink.NUD_REACHABLE |
	netlink.NUD_PROBE | netlink.NUD_STALE | netlink.NUD_DELAY

// minResolveGap bounds how often one address is re-resolved when Send keeps
// asking for it.
const minResolveGap = time.Second

type neighbours struct {
	h     *netlink.Handle
	links map[int]string // the uplinks: ifindex -> name
	log   *slog.Logger
	out   *atomic.Pointer[neighTable]

	wantc chan netip.Addr // peers Send found missing; non-blocking
	peerc chan struct{}   // SetPeers happened
	done  chan struct{}
	wg    sync.WaitGroup

	pmu     sync.Mutex
	pending []netip.Addr // last SetPeers, nil if none pending

	// Owned by run.
	tracked map[netip.Addr]bool // peers whose MACs we keep
	lastTry map[netip.Addr]time.Time
	created map[netip.Addr]int // managed entries we added: on which ifindex
}

func startNeighbours(h *netlink.Handle, links map[int]string, every time.Duration, log *slog.Logger, out *atomic.Pointer[neighTable]) *neighbours {
	n := &neighbours{
		h: h, links: links, log: log, out: out,
		wantc:   make(chan netip.Addr, 256),
		peerc:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		tracked: map[netip.Addr]bool{},
		lastTry: map[netip.Addr]time.Time{},
		created: map[netip.Addr]int{},
	}
	n.wg.Add(1)
	go n.run(every)
	return n
}

// want asks for a peer to be resolved. It never blocks: when the queue is
// full the next Send or tick asks again.
func (n *neighbours) want(a netip.Addr) {
	select {
	case n.wantc <- a:
	default:
	}
}

func (n *neighbours) setPeers(addrs []netip.Addr) {
	n.pmu.Lock()
	n.pending = addrs
	n.pmu.Unlock()
	select {
	case n.peerc <- struct{}{}:
	default:
	}
}

func (n *neighbours) stop() {
	close(n.done)
	n.wg.Wait()
}

func (n *neighbours) run(every time.Duration) {
	defer n.wg.Done()
	defer n.h.Close()
	defer n.deleteCreated(nil)
	tick := time.NewTicker(every)
	defer tick.Stop()

	// After triggering resolution, re-read the table a few times at growing
	// intervals (5 ms .. 640 ms, about 1.3 s in all), so a peer that answers
	// within milliseconds is usable at once rather than at the next tick.
	// The poll is a timer in this loop, so it never delays other events.
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	defer poll.Stop()
	var pollDelay time.Duration
	startPoll := func() {
		if !n.resolved() {
			pollDelay = 5 * time.Millisecond
			poll.Reset(pollDelay)
		}
	}
	for {
		select {
		case <-n.done:
			return
		case <-tick.C:
			n.refresh(true)
		case <-n.peerc:
			n.applyPeers()
			n.refresh(true)
			startPoll()
		case a := <-n.wantc:
			need := n.track(a)
			// Drain what queued meanwhile; bounded by the channel's capacity.
		drain:
			for i := 0; i < cap(n.wantc); i++ {
				select {
				case a := <-n.wantc:
					need = n.track(a) || need
				default:
					break drain
				}
			}
			// A peer that never answers is asked for on every Send; it
			// costs a refresh at most once per minResolveGap.
			if need {
				n.refresh(true)
				startPoll()
			}
		case <-poll.C:
			n.refresh(false)
			if pollDelay < 640*time.Millisecond && !n.resolved() {
				pollDelay *= 2
				poll.Reset(pollDelay)
			}
		}
	}
}

// track starts tracking a peer Send asked for. It reports whether a refresh
// is due: the peer is new, or its last resolution attempt is old enough.
func (n *neighbours) track(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if _, ok := n.tracked[a]; !ok {
		n.tracked[a] = true
		return true
	}
	return time.Since(n.lastTry[a]) >= minResolveGap
}

func (n *neighbours) applyPeers() {
	n.pmu.Lock()
	addrs := n.pending
	n.pending = nil
	n.pmu.Unlock()
	if addrs == nil {
		return
	}
	next := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			next[a] = true
		}
	}
	// Once SetPeers is in use it is the authority: forget everything else,
	// including peers Send mentioned, and stop probing departed ones.
	n.deleteCreated(next)
	for a := range n.lastTry {
		if !next[a] {
			delete(n.lastTry, a)
		}
	}
	n.tracked = next
}

func (n *neighbours) resolved() bool {
	for _, e := range n.out.Load().m {
		if e.err == ErrNoMAC {
			return false
		}
	}
	return true
}

// refresh rebuilds the snapshot from the kernel's neighbour table. With
// resolve it also checks routes and triggers resolution for peers that
// have no usable entry.
func (n *neighbours) refresh(resolve bool) {
	kernel, err := n.kernelEntries()
	if err != nil {
		n.log.Warn("l2: reading neighbour table failed; keeping the cached MACs", "err", err)
		return
	}
	old := n.out.Load()
	t := &neighTable{m: make(map[netip.Addr]neighEntry, len(n.tracked))}
	seen := map[[6]byte]bool{}
	now := time.Now()
	for a := range n.tracked {
		if e, ok := kernel[a]; ok {
			t.m[a] = e
			if !seen[e.mac] {
				seen[e.mac] = true
				t.macs = append(t.macs, e.mac)
			}
			continue
		}
		if !resolve {
			if e, ok := old.m[a]; ok && e.err != nil {
				t.m[a] = e
			} else {
				t.m[a] = neighEntry{err: ErrNoMAC}
			}
			continue
		}
		link, err := n.onLink(a)
		if err != nil {
			// Routes come back (an uplink recreated, a route re-added):
			// look again when Send next asks, at most once per gap.
			n.lastTry[a] = now
			if e, ok := old.m[a]; !ok || e.err == nil || e.err.Error() != err.Error() {
				n.log.Warn("l2: peer cannot be reached on an uplink", "peer", a, "err", err)
			}
			t.m[a] = neighEntry{err: err}
			continue
		}
		t.m[a] = neighEntry{err: ErrNoMAC}
		if now.Sub(n.lastTry[a]) >= minResolveGap {
			n.lastTry[a] = now
			n.resolve(a, link)
		}
	}
	n.out.Store(t)
}

// kernelEntries reads the usable neighbour entries of every uplink (only
// the uplinks': a node with many pods has a neighbour per veth).
func (n *neighbours) kernelEntries() (map[netip.Addr]neighEntry, error) {
	kernel := map[netip.Addr]neighEntry{}
	for ifindex := range n.links {
		list, err := n.h.NeighList(ifindex, unix.AF_UNSPEC)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, err
		}
		for _, e := range list {
			a, ok := netip.AddrFromSlice(e.IP)
			if !ok || len(e.HardwareAddr) != 6 || e.State&nudValid == 0 {
				continue
			}
			kernel[a.Unmap()] = neighEntry{mac: [6]byte(e.HardwareAddr), ifindex: e.LinkIndex}
		}
	}
	return kernel, nil
}

// onLink returns the uplink the kernel would send to a on directly, without
// a gateway: only then can an Ethernet frame reach it.
func (n *neighbours) onLink(a netip.Addr) (int, error) {
	routes, err := n.h.RouteGet(a.AsSlice())
	if err != nil {
		return 0, fmt.Errorf("%w: no route to %s: %v", ErrNotOnLink, a, err)
	}
	if len(routes) == 0 {
		return 0, fmt.Errorf("%w: no route to %s", ErrNotOnLink, a)
	}
	r := routes[0]
	if r.Gw != nil {
		return 0, fmt.Errorf("%w: %s is routed via gateway %s; l2 needs peers on a link shared with an uplink (use the tunnel transport)", ErrNotOnLink, a, r.Gw)
	}
	if _, ok := n.links[r.LinkIndex]; !ok {
		name := fmt.Sprintf("ifindex %d", r.LinkIndex)
		if l, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		return 0, fmt.Errorf("%w: %s is reached via %s, which is not an uplink", ErrNotOnLink, a, name)
	}
	return r.LinkIndex, nil
}

func (n *neighbours) resolve(a netip.Addr, ifindex int) {
	iface := n.links[ifindex]
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	e := &netlink.Neigh{
		LinkIndex: ifindex,
		Family:    fam,
		State:     netlink.NUD_NONE,
		IP:        a.AsSlice(),
		FlagsExt:  netlink.NTF_EXT_MANAGED,
	}
	err := n.h.NeighSet(e)
	if err == nil {
		// A change to the host's state: said once per entry, at info.
		if _, ok := n.created[a]; !ok {
			n.log.Info("l2: added a managed neighbour entry to resolve a peer (removed when it leaves and on exit)", "peer", a, "iface", iface)
		}
		n.created[a] = ifindex
		return
	}
	// Older kernels: a one-shot resolution.
	e.FlagsExt = 0
	e.Flags = netlink.NTF_USE
	if err2 := n.h.NeighSet(e); err2 != nil {
		n.log.Warn("l2: cannot trigger neighbour resolution", "peer", a, "iface", iface, "managed_err", err, "err", err2)
		return
	}
	n.log.Debug("l2: resolving peer with NTF_USE (managed entries unsupported)", "peer", a, "iface", iface, "managed_err", err)
}

// deleteCreated removes the managed entries we added for peers not in keep
// (all of them when keep is nil).
func (n *neighbours) deleteCreated(keep map[netip.Addr]bool) {
	for a, ifindex := range n.created {
		if keep[a] {
			continue
		}
		fam := unix.AF_INET
		if a.Is6() {
			fam = unix.AF_INET6
		}
		err := n.h.NeighDel(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: a.AsSlice()})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			n.log.Debug("l2: deleting managed neighbour entry failed", "peer", a, "err", err)
		} else {
			n.log.Info("l2: removed the managed neighbour entry", "peer", a, "iface", n.links[ifindex])
		}
		delete(n.created, a)
	}
}
