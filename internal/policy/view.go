package policy

import (
	"net/netip"
	"slices"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// Origin is what the capture layer knows about how the packet arrived.
type Origin struct {
	SrcMAC, DstMAC [6]byte // link-layer addresses, meaningful only when HasMAC
	HasMAC         bool    // the capture layer saw an Ethernet header
	// Tunnel: the packet arrived on go-pmtud's own TUN device, so it is a
	// peer's copy we injected (tunnel transport). Its outer source is the
	// router and it carries no MAC: nothing else tells it apart.
	Tunnel bool
}

// View is an immutable snapshot of who is who: our own addresses and MACs,
// the peers and their MACs. Build a new one off the hot path whenever any of
// them changes and swap it in (for example through an atomic.Pointer); Decide
// reads it without locks.
type View struct {
	self     []netip.Addr // normalised (unmapped, no zone), sorted, unique
	selfMACs []uint64     // sorted, unique; zero and group MACs removed
	peerMACs []uint64     // likewise
	peers    *peers.Set
	// anyFamily: the transport carries a message of either family to a
	// peer known by one address (l2, broadcast, tunnel).
	anyFamily bool
}

// NewView builds a View. It copies its arguments, so the caller may reuse
// them. Invalid addresses are ignored; IPv4-mapped IPv6 addresses are
// unmapped and zones dropped, so they compare equal to what Decide sees. The
// all-zero MAC and group (multicast/broadcast) MACs are ignored: no frame is
// sent from them, and an unresolved neighbour entry reported as 00:00:00:00:00:00
// must not make every MAC-less-looking frame count as a peer's.
func NewView(selfAddrs []netip.Addr, selfMACs [][6]byte, peerSet *peers.Set, peerMACs [][6]byte) *View {
	v := &View{peers: peerSet}
	if v.peers == nil {
		v.peers = peers.NewSet(nil)
	}
	for _, a := range selfAddrs {
		if a.IsValid() {
			v.self = append(v.self, norm(a))
		}
	}
	slices.SortFunc(v.self, netip.Addr.Compare)
	v.self = slices.Compact(v.self)
	v.selfMACs = macSet(selfMACs)
	v.peerMACs = macSet(peerMACs)
	return v
}

// CarryAnyFamily records that the transport reaches a peer known by one
// address family with messages of both. Call it before the view is
// published; it returns v.
func (v *View) CarryAnyFamily(yes bool) *View {
	v.anyFamily = yes
	return v
}

// Recipients returns the peers a message of family f goes to: every peer
// when the transport carries any family, else those with an address of f.
// The caller must not modify the slice.
func (v *View) Recipients(f uint8) []peers.Peer {
	if v == nil {
		return nil
	}
	if v.anyFamily {
		return v.peers.All()
	}
	return v.peers.Family(f)
}

// RecipientNamed returns the peer called name if a message of family f
// goes to it (see Recipients), in O(log n).
func (v *View) RecipientNamed(name string, f uint8) (peers.Peer, bool) {
	if v == nil {
		return peers.Peer{}, false
	}
	i := v.peers.IndexByName(name)
	if i < 0 {
		return peers.Peer{}, false
	}
	p := v.peers.All()[i]
	if !v.anyFamily && !p.AddrOf(f).IsValid() {
		return peers.Peer{}, false
	}
	return p, true
}

// Peers returns the peer set the view was built with (never nil).
func (v *View) Peers() *peers.Set {
	if v == nil {
		return nil
	}
	return v.peers
}

func (v *View) isSelf(a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(v.self, a, netip.Addr.Compare)
	return ok
}

func (v *View) isPeer(a netip.Addr) bool { return v.peers.Contains(a) }

func (v *View) isSelfMAC(m [6]byte) bool { return hasMAC(v.selfMACs, m) }

func (v *View) isPeerMAC(m [6]byte) bool { return hasMAC(v.peerMACs, m) }

func macSet(in [][6]byte) []uint64 {
	out := make([]uint64, 0, len(in))
	for _, m := range in {
		if u := mac64(m); u != 0 && m[0]&1 == 0 {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hasMAC(set []uint64, m [6]byte) bool {
	_, ok := slices.BinarySearch(set, mac64(m))
	return ok
}

func mac64(m [6]byte) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// norm puts an address in the one form every comparison uses: IPv4-mapped
// IPv6 becomes IPv4 (netip.Prefix.Contains would otherwise never match it)
// and the zone goes (Contains also rejects zoned addresses, and a peer or
// router is the same host whichever interface name the kernel attached).
func norm(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
