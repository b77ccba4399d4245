//go:build linux

package inject

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// localPoll is how often the node's addresses are listed again. A new
// address is refused as a destination for at most this long.
const localPoll = time.Second

// localAddrs keeps this node's addresses, and the broadcast addresses of
// its IPv4 subnets, fresh from netlink: a sorted snapshot swapped
// atomically, so lookups from the packet path neither lock nor allocate.
type localAddrs struct {
	h    *netlink.Handle // bound to the namespace it was opened in
	snap atomic.Pointer[addrSnap]
}

type addrSnap struct {
	local, bcast []netip.Addr
}

// openLocalAddrs opens a netlink handle in the calling thread's network
// namespace and lists the addresses once.
func openLocalAddrs() (*localAddrs, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	l := &localAddrs{h: h}
	if err := l.refresh(); err != nil {
		h.Close()
		return nil, err
	}
	return l, nil
}

func (l *localAddrs) refresh() error {
	list, err := l.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	s := &addrSnap{}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		s.local = append(s.local, ip.Unmap())
		if b, ok := subnetBroadcast(ip.Unmap(), a.IPNet.Mask); ok {
			s.bcast = append(s.bcast, b)
		}
	}
	slices.SortFunc(s.local, netip.Addr.Compare)
	slices.SortFunc(s.bcast, netip.Addr.Compare)
	l.snap.Store(s)
	return nil
}

// run refreshes the snapshot every localPoll until ctx ends. A failed
// listing keeps the last snapshot.
func (l *localAddrs) run(ctx context.Context) {
	t := time.NewTicker(localPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.refresh()
		}
	}
}

func (l *localAddrs) isLocal(a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(l.snap.Load().local, a, netip.Addr.Compare)
	return ok
}

func (l *localAddrs) isBroadcast(a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(l.snap.Load().bcast, a, netip.Addr.Compare)
	return ok
}

// subnetBroadcast is the directed broadcast address of an IPv4 subnet of
// /30 or wider (a /31 or /32 has none).
func subnetBroadcast(a netip.Addr, mask []byte) (netip.Addr, bool) {
	if !a.Is4() || len(mask) != 4 {
		return netip.Addr{}, false
	}
	if ones, _ := (net.IPMask(mask)).Size(); ones > 30 {
		return netip.Addr{}, false
	}
	b := a.As4()
	for i := range b {
		b[i] |= ^mask[i]
	}
	return netip.AddrFrom4(b), true
}

func (l *localAddrs) close() { l.h.Close() }
