package policy

import "math/bits"

// maxPrealloc caps the keys a generation is sized for up front. Sizing for
// what the global bucket lets through (2000 keys by default) kept 1.3 MB
// resident in a daemon that may never see a PTB, and raised limits would
// reserve MaxTracked/2 per generation. Beyond it a generation grows to
// need, once.
const maxPrealloc = 64

// table64 maps 64-bit keys (seeded hashes of the real keys) to int64 state
// (a tat or a timestamp) for at most max keys, with O(1) amortised eviction
// and no allocation in steady state.
//
// It keeps two generations, cur and old. Writes go to cur (moving a key up
// from old); reads look in cur, then old. When cur reaches max/2 keys, or
// the generation is older than horizon, old is cleared and the two swap. So
// len(cur)+len(old) <= max always; the keys dropped are those not written
// for a whole generation, the oldest ones; and when the rotation is due to
// age (the normal case, see Config.MaxTracked) every key dropped was last
// written more than horizon ago, when its state had already expired:
// eviction then loses nothing. Only a size-driven rotation can drop live
// state; the caller treats a missing key as fresh (a full bucket, no
// duplicate), so that fails open per key and stays bounded by the global
// bucket, which is never evicted.
//
// Each generation is an open-addressing array of 16-byte slots (linear
// probing, at most 3/4 full): a full generation of n keys takes 4/3 n
// slots where a map takes the next power of two above 8/7 n, so the
// engine's three tables full at MaxTracked hold about 4 MiB instead of 6.8
// (BenchmarkFullTablesHeap; table_ref_test.go keeps the map version as the
// model these arrays are checked against). put does not delete a key moved
// up from old: get looks in cur first, so the stale copy is never read,
// and it goes at the next rotation. Only inserts reach cur and clear keeps
// an array, so a grown generation allocates nothing more.
type table64 struct {
	cur, old gen64
	half     int
	horizon  int64
	genStart int64
}

// newTable64 holds at most maxKeys keys, sized for hint up front, whose
// state expires after horizon ns; its arrays come from mem (nil: the heap).
func newTable64(maxKeys, hint int, horizon int64, mem Memory) table64 {
	if mem == nil {
		mem = heapMemory{}
	}
	half := max(maxKeys/2, 1)
	hint = min(max(hint, 0), half, maxPrealloc)
	return table64{
		cur:  newGen64(hint, half, mem),
		old:  newGen64(hint, half, mem),
		half: half,
		// The horizon is the time after which state has expired (a
		// duplicate window, a bucket's refill): a generation is kept that
		// long, and no longer, so a 100 ms window holds 100 ms of keys, not
		// a second's. The floor only bounds how often generations swap.
		horizon: max(horizon, minHorizon),
	}
}

// minHorizon bounds how often a table's generations swap.
const minHorizon = int64(10e6)

// free gives the arrays back to their memory; the table is empty and
// unusable afterwards.
func (t *table64) free() {
	t.cur.free()
	t.old.free()
}

func (t *table64) get(k uint64) (int64, bool) {
	if v, ok := t.cur.get(k); ok {
		return v, true
	}
	return t.old.get(k)
}

func (t *table64) put(k uint64, v, now int64) {
	age := now - t.genStart
	switch {
	case age >= 2*t.horizon:
		t.cur.clear()
		t.old.clear()
		t.genStart = now
	case age >= t.horizon || t.cur.n >= t.half:
		t.old.clear()
		t.cur, t.old = t.old, t.cur
		t.genStart = now
	}
	t.cur.put(k, v)
}

// len counts the entries held, a key moved up from old twice.
func (t *table64) len() int { return t.cur.n + t.old.n }

// gen64 is one generation. Key 0 marks an empty slot, so it is kept apart.
type gen64 struct {
	mem    Memory
	slots  []Slot
	n      int // keys held, the zero key included
	maxCap int // slots for the generation's most keys at 3/4 load
	zero   bool
	zeroV  int64
}

// Slot is one entry of a table: a key's hash and its state. Free of
// pointers, so the arrays can live outside the Go heap (Memory).
type Slot struct {
	k uint64
	v int64
}

// Memory provides the tables' arrays of slots. The zero Config uses the Go
// heap; the daemon maps them outside it (internal/offheap), where the
// garbage collector neither scans them nor lets the heap grow to twice
// their size before collecting, and a replaced array is returned at once.
type Memory interface {
	Slots(n int) []Slot // n zeroed slots
	Free([]Slot)        // s came from Slots and is not used again
}

type heapMemory struct{}

func (heapMemory) Slots(n int) []Slot { return make([]Slot, n) }
func (heapMemory) Free([]Slot)        {}

func newGen64(hint, maxKeys int, mem Memory) gen64 {
	g := gen64{mem: mem, maxCap: slotsFor(maxKeys)}
	g.slots = mem.Slots(min(slotsFor(max(hint, 6)), g.maxCap))
	return g
}

func (g *gen64) free() {
	g.mem.Free(g.slots)
	g.slots, g.n, g.zero = nil, 0, false
}

// slotsFor is the array keeping n keys at most 3/4 full.
func slotsFor(n int) int { return n + (n+2)/3 + 1 }

// home is k's first slot: the keys are uniform hashes, so the high bits of
// k times the length spread them over any length, power of two or not.
func (g *gen64) home(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(g.slots)))
	return int(hi)
}

func (g *gen64) get(k uint64) (int64, bool) {
	if k == 0 {
		if !g.zero {
			return 0, false
		}
		return g.zeroV, true
	}
	for i := g.home(k); ; {
		switch s := g.slots[i]; s.k {
		case k:
			return s.v, true
		case 0:
			return 0, false
		}
		if i++; i == len(g.slots) {
			i = 0
		}
	}
}

func (g *gen64) put(k uint64, v int64) {
	if k == 0 {
		if !g.zero {
			g.n++
		}
		g.zero, g.zeroV = true, v
		return
	}
	if 4*(g.n+1) > 3*len(g.slots) && len(g.slots) < g.maxCap {
		g.grow()
	}
	for i := g.home(k); ; {
		switch g.slots[i].k {
		case k:
			g.slots[i].v = v
			return
		case 0:
			g.slots[i] = Slot{k, v}
			g.n++
			return
		}
		if i++; i == len(g.slots) {
			i = 0
		}
	}
}

// grow doubles the array, up to maxCap: once per size, as a map grows;
// clear keeps the array, so a grown generation allocates nothing more.
func (g *gen64) grow() {
	old := g.slots
	defer g.mem.Free(old)
	g.slots = g.mem.Slots(min(2*len(old), g.maxCap))
	for _, s := range old {
		if s.k == 0 {
			continue
		}
		i := g.home(s.k)
		for g.slots[i].k != 0 {
			if i++; i == len(g.slots) {
				i = 0
			}
		}
		g.slots[i] = s
	}
}

func (g *gen64) clear() {
	if g.n > 0 {
		clear(g.slots)
		g.n, g.zero = 0, false
	}
}
