package capture

import "time"

// idleTimer decides when the receive loop's read deadline wakes it to call
// Config.Idle: once no packet has come for after, then every after while
// the hook has more to do. A deadline is set once per period, not per
// packet, so steady traffic costs a comparison per receive.
type idleTimer struct {
	after time.Duration // 0: never
	last  time.Time     // when packets last came
	armed bool          // a deadline is set
}

// seen records packets at now and returns the deadline to set, or the
// zero time when one is set already (or idling is off).
func (t *idleTimer) seen(now time.Time) time.Time {
	t.last = now
	if t.after <= 0 || t.armed {
		return time.Time{}
	}
	t.armed = true
	return now.Add(t.after)
}

// due is asked when the deadline passed at now: whether the loop has been
// idle long enough to call the hook, and if not, the deadline to set
// instead (packets came since it was set).
func (t *idleTimer) due(now time.Time) (bool, time.Time) {
	if quiet := t.last.Add(t.after); now.Before(quiet) {
		return false, quiet
	}
	return true, time.Time{}
}

// done records the hook's answer at now and returns the next deadline:
// another period if it has more to do, else none (the zero time clears
// the deadline, and the next packets arm it again).
func (t *idleTimer) done(now time.Time, more bool) time.Time {
	if more {
		return now.Add(t.after)
	}
	t.armed = false
	return time.Time{}
}
