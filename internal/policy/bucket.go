package policy

import (
	"hash/maphash"
	"time"
)

// Buckets is the policy's GCRA rate limit (see limit) for other receivers
// of untrusted input (the tunnel receiver): one bucket per key, bounded in
// keys like the policy's own tables, plus one overall bucket that is never
// evicted. Not safe for concurrent use. It does not allocate in steady
// state.
type Buckets[K comparable] struct {
	per, all limit
	allTAT   int64
	keys     table64 // by the key's seeded hash, as the engine's tables
	seed     maphash.Seed
	started  bool
	base     time.Time
}

// NewBuckets returns buckets allowing each key rate per second with burst,
// and all keys together allRate with allBurst, tracking at most maxKeys
// keys (at least 2). Rates and bursts are checked as the policy's are.
func NewBuckets[K comparable](rate float64, burst int, allRate float64, allBurst, maxKeys int) (*Buckets[K], error) {
	if err := checkLimit("per-key", rate, burst); err != nil {
		return nil, err
	}
	if err := checkLimit("overall", allRate, allBurst); err != nil {
		return nil, err
	}
	b := &Buckets[K]{per: newLimit(rate, burst), all: newLimit(allRate, allBurst), allTAT: -timeLimit}
	b.keys = newTable64(max(maxKeys, 2), 0, b.per.refill(), nil)
	b.seed = maphash.MakeSeed()
	return b, nil
}

// Verdict of Take.
type Verdict uint8

const (
	Allowed        Verdict = iota
	LimitedKey             // the key's own bucket is empty
	LimitedOverall         // the overall bucket is empty
)

// Take spends a token of key's bucket and of the overall bucket at now, or
// says which one is empty (spending nothing). A key's bucket is checked
// first, so one noisy key is refused by its own bucket and does not drain
// the overall one.
func (b *Buckets[K]) Take(key K, now time.Time) Verdict {
	if !b.started {
		b.started, b.base = true, now
	}
	t := min(max(int64(now.Sub(b.base)), -timeLimit), timeLimit)
	k := maphash.Comparable(b.seed, key)
	tat, ok := b.keys.get(k)
	if !ok {
		tat = t
	}
	if !b.per.allows(tat, t) {
		return LimitedKey
	}
	if !b.all.allows(b.allTAT, t) {
		return LimitedOverall
	}
	b.allTAT = b.all.take(b.allTAT, t)
	b.keys.put(k, b.per.take(tat, t), t)
	return Allowed
}
