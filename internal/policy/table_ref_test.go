package policy

// table is the generational map table the engine used before table64 and
// the reference model table64 is checked against (table64_test.go): the
// same rotation, with Go maps.
type table[K comparable] struct {
	cur, old map[K]int64
	half     int
	horizon  int64 // ns; at least minHorizon, as table64
	genStart int64
}

func newTable[K comparable](maxKeys, hint int, horizon int64) table[K] {
	half := max(maxKeys/2, 1)
	hint = min(max(hint, 0), half, maxPrealloc)
	return table[K]{
		cur:     make(map[K]int64, hint),
		old:     make(map[K]int64, hint),
		half:    half,
		horizon: max(horizon, minHorizon),
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
