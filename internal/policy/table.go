package policy

// Time inside the engine is int64 nanoseconds since the engine's first
// Decide, clamped to ±timeLimit. Clamping keeps every sum below (times,
// plus tolerances and intervals that Validate bounds by maxSpan) inside
// int64 without saturating arithmetic, and being monotonic it cannot
// break the rate-limit bound.
const (
	timeLimit = int64(1) << 62
	maxSpan   = int64(1) << 60
)

// limit is a token bucket in its GCRA form (ITU-T I.371; RFC 2697 is the
// same bucket): the whole state of one bucket is a single "theoretical
// arrival time" (tat), so a table of buckets is a map to int64, refill is
// implicit and exact, and no timer is needed.
//
// A message conforms if tat <= now + tau; relaying it moves tat to
// max(tat, now) + interval. Because tat only grows, by interval per relay,
// n relays between times t0 and t1 satisfy n <= burst + (t1-t0)/interval,
// whatever order the times arrive in.
type limit struct {
	interval int64 // ns per token: ceil(1e9/rate), so never faster than configured
	tau      int64 // (burst-1) * interval: how far ahead of now tat may run
}

func newLimit(rate float64, burst int) limit {
	iv := int64(1e9 / rate)
	if float64(iv) < 1e9/rate {
		iv++ // round the interval up: the effective rate never exceeds the configured one
	}
	iv = max(iv, 1)
	return limit{interval: iv, tau: int64(burst-1) * iv}
}

// allows reports whether a bucket at tat has a token at now. A bucket never
// seen is full: pass tat = now (any tat <= now means full).
func (l limit) allows(tat, now int64) bool { return tat <= now+l.tau }

// take returns the bucket's tat after one token is spent at now.
func (l limit) take(tat, now int64) int64 { return max(tat, now) + l.interval }

// allowsN reports whether a bucket at tat has n tokens at now (n >= 1):
// whether its n-th token conforms. An n above the burst never fits. The
// first test is in float64 so a huge n cannot overflow; past it, n is at
// most the burst, and Validate bounds burst x interval by maxSpan.
func (l limit) allowsN(tat, now int64, n int) bool {
	need := float64(n-1) * float64(l.interval)
	if need > float64(l.tau) {
		return false
	}
	return tat+int64(need) <= now+l.tau
}

// takeN returns the bucket's tat after n tokens are spent at now.
func (l limit) takeN(tat, now int64, n int) int64 { return max(tat, now) + int64(n)*l.interval }

// refill is how long an untouched bucket takes to be full again: after
// that, forgetting it changes nothing.
func (l limit) refill() int64 { return l.tau + l.interval }

// table maps keys to int64 state (a tat or a timestamp) for at most max
// keys, with O(1) amortised eviction and no allocation in steady state.
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
// cur only ever receives inserts and old only deletes, and clear() keeps a
// map's memory, so the maps neither accumulate tombstones nor reallocate
// once grown.
type table[K comparable] struct {
	cur, old map[K]int64
	half     int
	horizon  int64 // ns; at least a second so time-driven clears stay rare
	genStart int64
}

// maxPrealloc caps the keys a map is sized for up front. Sizing for what
// the global bucket lets through (2000 keys a map by default) kept 1.3 MB
// resident in a daemon that may never see a PTB, and raised limits would
// reserve MaxTracked/2 per map (about 20 MB for the three tables). Beyond
// it a map grows to need, once: clear keeps a map's memory, so a grown map
// allocates nothing more.
const maxPrealloc = 64

func newTable[K comparable](maxKeys, hint int, horizon int64) table[K] {
	half := max(maxKeys/2, 1)
	hint = min(max(hint, 0), half, maxPrealloc)
	return table[K]{
		cur:     make(map[K]int64, hint),
		old:     make(map[K]int64, hint),
		half:    half,
		horizon: max(horizon, int64(1e9)),
	}
}

func (t *table[K]) get(k K) (int64, bool) {
	if v, ok := t.cur[k]; ok {
		return v, true
	}
	v, ok := t.old[k]
	return v, ok
}

func (t *table[K]) put(k K, v, now int64) {
	age := now - t.genStart
	switch {
	case age >= 2*t.horizon:
		// Everything in both generations has expired.
		clear(t.cur)
		clear(t.old)
		t.genStart = now
	case age >= t.horizon || len(t.cur) >= t.half:
		clear(t.old)
		t.cur, t.old = t.old, t.cur
		t.genStart = now
	}
	t.cur[k] = v
	if len(t.old) > 0 {
		delete(t.old, k)
	}
}

func (t *table[K]) len() int { return len(t.cur) + len(t.old) }
