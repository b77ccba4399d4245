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
// Each generation is an open-addressing array of 8-byte slots (linear
// probing, at most 3/4 full): a full generation of n keys takes 4/3 n
// slots where a map takes the next power of two above 8/7 n, so the
// engine's three tables full at MaxTracked hold about 2 MiB instead of 6.8
// (BenchmarkFullTablesHeap; table_ref_test.go keeps the map version as the
// model these arrays are checked against). A slot holds 40 bits of the key
// (its tag) and 24 of state: a key's state is always a time in the two
// horizons after its generation began (see put), so it is kept relative
// to that start, in units of 2^shift ns that fit two horizons in 24 bits
// (128 ns for a 1 s horizon, 16 ns for the 100 ms duplicate window).
// put does not delete a key moved up from old: get looks in cur first, so
// the stale copy is never read, and it goes at the next rotation. Only
// inserts reach cur and clear keeps an array, so a grown generation
// allocates nothing more.
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
	// The horizon is the time after which state has expired (a duplicate
	// window, a bucket's refill): a generation is kept that long, and no
	// longer, so a 100 ms window holds 100 ms of keys, not a second's. The
	// floor only bounds how often generations swap.
	horizon = max(horizon, minHorizon)
	shift := unitShift(2 * horizon)
	return table64{
		cur:     newGen64(hint, half, mem, shift),
		old:     newGen64(hint, half, mem, shift),
		half:    half,
		horizon: horizon,
	}
}

// minHorizon bounds how often a table's generations swap.
const minHorizon = int64(10e6)

// unitShift is the smallest power of two of nanoseconds in which a span
// fits the 24 bits of a slot's state.
func unitShift(span int64) uint {
	s := uint(0)
	for (span-1)>>s >= 1<<stateBits {
		s++
	}
	return s
}

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

// put sets k's state v at now. v must lie in [now, now+horizon): a
// duplicate's time (now) or a bucket's tat, which runs at most a refill
// (the horizon) ahead of now. As cur began at most a horizon before now,
// every state cur holds lies within two horizons of its start.
func (t *table64) put(k uint64, v, now int64) {
	age := now - t.genStart
	switch {
	case age >= 2*t.horizon:
		t.cur.clear(now)
		t.old.clear(now)
		t.genStart = now
	case age >= t.horizon || t.cur.n >= t.half:
		t.rotate(now)
	}
	t.cur.put(k, v)
}

// rotate starts a new generation at now: old is cleared and becomes cur.
func (t *table64) rotate(now int64) {
	t.old.clear(now)
	t.cur, t.old = t.old, t.cur
	t.genStart = now
}

// trim rotates as a put at now would, without putting, and once every
// state has expired takes both generations back to the arrays they began
// with: after a burst, when nothing more arrives, the memory it grew is
// given back. Every state has expired when cur began two horizons ago, or
// one if cur is empty (old's states were all put before cur began). It
// reports whether the table still holds keys or a grown array, that is,
// whether a later trim has work to do.
func (t *table64) trim(now int64) bool {
	age := now - t.genStart
	switch {
	case age >= 2*t.horizon, age >= t.horizon && t.cur.n == 0:
		t.cur.reset(now)
		t.old.reset(now)
		t.genStart = now
	case age >= t.horizon:
		t.rotate(now)
	}
	return t.len() > 0 || t.cur.grown() || t.old.grown()
}

// slots counts the slots of both generations' arrays.
func (t *table64) slots() int { return len(t.cur.slots) + len(t.old.slots) }

// len counts the entries held, a key moved up from old twice.
func (t *table64) len() int { return t.cur.n + t.old.n }

// gen64 is one generation.
type gen64 struct {
	mem     Memory
	slots   []Slot
	n       int   // keys held
	maxCap  int   // slots for the generation's most keys at 3/4 load
	initial int   // slots it was made with, which it never shrinks below
	start   int64 // the generation's start: states are kept relative to it
	shift   uint  // in units of 1<<shift ns
}

// Slot is one entry of a table: the key's tag in the high 40 bits, its
// state in the low 24; 0 is an empty slot. Free of pointers, so the arrays
// can live outside the Go heap (Memory).
type Slot uint64

const (
	stateBits = 24
	stateMask = 1<<stateBits - 1
)

// tag is the part of k a slot keeps, its high 40 bits (never 0), which
// also place it (home): so a grown array can place the slots again, and
// two keys share state only if they share those 40 bits, about one lookup
// in 2^40 / MaxTracked (3 x 10^-8 for a full table): harmless (a message
// taken for a duplicate, or limited, once), and a random seed per table
// keeps anyone from aiming for it.
func tag(k uint64) uint64 {
	if t := k >> stateBits; t != 0 {
		return t
	}
	return 1
}

// encode keeps v relative to the generation's start, rounded up: a tat
// read back is never earlier than the one written, so a limit stays a
// limit (stricter by at most 2^shift ns a token, a relative 2·burst/2^24
// of the rate); saturating keeps a state put outside put's contract in
// range.
func (g *gen64) encode(v int64) uint64 {
	d := v - g.start
	if d <= 0 {
		return 0
	}
	u := (uint64(d) + 1<<g.shift - 1) >> g.shift
	return min(u, stateMask)
}

func (g *gen64) decode(s Slot) int64 { return g.start + int64(uint64(s)&stateMask)<<g.shift }

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

func newGen64(hint, maxKeys int, mem Memory, shift uint) gen64 {
	g := gen64{mem: mem, maxCap: slotsFor(maxKeys), shift: shift}
	g.initial = min(slotsFor(max(hint, 6)), g.maxCap)
	g.slots = mem.Slots(g.initial)
	return g
}

func (g *gen64) free() {
	g.mem.Free(g.slots)
	g.slots, g.n = nil, 0
}

// slotsFor is the array keeping n keys at most 3/4 full.
func slotsFor(n int) int { return n + (n+2)/3 + 1 }

// home is the first slot of a key with tag t: the keys are uniform
// hashes, so their high bits times the length spread them over any
// length, power of two or not.
func (g *gen64) home(t uint64) int {
	hi, _ := bits.Mul64(t<<stateBits, uint64(len(g.slots)))
	return int(hi)
}

func (g *gen64) get(k uint64) (int64, bool) {
	want := tag(k)
	for i := g.home(want); ; {
		s := g.slots[i]
		switch uint64(s) >> stateBits {
		case want:
			return g.decode(s), true
		case 0:
			return 0, false
		}
		if i++; i == len(g.slots) {
			i = 0
		}
	}
}

func (g *gen64) put(k uint64, v int64) {
	if 4*(g.n+1) > 3*len(g.slots) && len(g.slots) < g.maxCap {
		g.grow()
	}
	want := tag(k)
	s := Slot(want<<stateBits | g.encode(v))
	for i := g.home(want); ; {
		switch uint64(g.slots[i]) >> stateBits {
		case want:
			g.slots[i] = s
			return
		case 0:
			g.slots[i] = s
			g.n++
			return
		}
		if i++; i == len(g.slots) {
			i = 0
		}
	}
}

// grow doubles the array, up to maxCap: once per size, as a map grows;
// clear keeps the array while the rate that grew it goes on, so a steady
// generation allocates nothing more.
func (g *gen64) grow() {
	old := g.slots
	defer g.mem.Free(old)
	g.slots = g.mem.Slots(min(2*len(old), g.maxCap))
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := g.home(uint64(s) >> stateBits)
		for g.slots[i] != 0 {
			if i++; i == len(g.slots) {
				i = 0
			}
		}
		g.slots[i] = s
	}
}

// clear empties the generation, which starts again at now. A generation
// grown for a burst that has passed gives its array back for a smaller
// one: without this a flood's tables stayed resident for good. It shrinks
// only when it held under a tenth of its slots, to an array for twice
// that many keys, so a steady rate neither grows nor shrinks it.
func (g *gen64) clear(now int64) {
	g.start = now
	if want := max(g.initial, slotsFor(2*g.n)); 4*want <= len(g.slots) {
		g.renew(want)
		return
	}
	if g.n > 0 {
		clear(g.slots)
		g.n = 0
	}
}

// reset empties the generation into the array it began with.
func (g *gen64) reset(now int64) {
	if g.grown() {
		g.renew(g.initial)
	}
	g.clear(now)
}

// renew empties the generation into a fresh array of n slots and gives
// the old one back.
func (g *gen64) renew(n int) {
	g.mem.Free(g.slots)
	g.slots, g.n = g.mem.Slots(n), 0
}

func (g *gen64) grown() bool { return len(g.slots) != g.initial }
