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
