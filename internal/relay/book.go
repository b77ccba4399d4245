package relay

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
)

// state is what Handle reads in one atomic load: the policy's view and the
// peer book built for the view's peer set.
type state struct {
	view *policy.View
	book *book
}

// book indexes one peer set for the send path, so that per-peer work is a
// lookup, never a scan of the set: a failed peer is counted in O(1) (issue
// 13 measured tens of milliseconds per relay to 5,000 failing peers when
// each failure scanned the set), and a targeted fan-out resolves a node
// name in O(log n). Built off the hot path whenever the set changes.
//
// Peers are numbered by family, f = 0 for IPv4 and 1 for IPv6, and by
// their index in set.Family.
type book struct {
	set    *peers.Set
	byAddr map[netip.Addr]slot
	// byName[f] indexes family f by name: peers of one name (several
	// addresses of a node) are adjacent.
	byName [2][]named
	// errs[f][i] is peer i's send-error counter, resolved on its first
	// failure; only Handle's goroutine touches it.
	errs [2][]prometheus.Counter
}

type slot struct {
	f uint8
	i int32
}

type named struct {
	name string
	idx  int32
}

func newBook(set *peers.Set) *book {
	b := &book{set: set, byAddr: make(map[netip.Addr]slot, set.Len())}
	for f, fam := range []uint8{4, 6} {
		ps := set.Family(fam)
		idx := make([]named, len(ps))
		for i, p := range ps {
			idx[i] = named{p.Name, int32(i)}
			b.byAddr[p.Addr] = slot{uint8(f), int32(i)}
		}
		b.errs[f] = make([]prometheus.Counter, len(ps))
		slices.SortFunc(idx, func(a, b named) int { return strings.Compare(a.name, b.name) })
		b.byName[f] = idx
	}
	return b
}

func famIndex(fam uint8) int {
	if fam == 4 {
		return 0
	}
	return 1
}

// appendNamed appends the peers of family fam named name to dst, and their
// indexes to idx.
func (b *book) appendNamed(dst []peers.Peer, idx []int32, fam uint8, name string) ([]peers.Peer, []int32) {
	byName, ps := b.byName[famIndex(fam)], b.set.Family(fam)
	i, _ := slices.BinarySearchFunc(byName, name, func(e named, n string) int { return strings.Compare(e.name, n) })
	for ; i < len(byName) && byName[i].name == name; i++ {
		dst = append(dst, ps[byName[i].idx])
		idx = append(idx, byName[i].idx)
	}
	return dst, idx
}
