package capture

import "time"

// MaxBusyPoll bounds Config.BusyPoll: past a second the window no longer
// follows a burst of traffic but just burns a core.
const MaxBusyPoll = time.Second

// busyPoll decides whether the receiver keeps polling the socket without
// waiting (and so without letting its CPU go idle) or parks in the
// netpoller. Waking a halted idle CPU when a datagram arrives costs about
// 100 µs on some VMs; polling for a while after each datagram keeps the CPU
// awake while messages keep coming, and costs nothing once they stop.
type busyPoll struct {
	window time.Duration // 0: never poll
	last   time.Time     // when data (or an overrun) was last seen; zero: never
}

// seen records that a receive returned data at now.
func (b *busyPoll) seen(now time.Time) { b.last = now }

// active reports whether to keep polling at now: within window of the last
// data, never before the first.
func (b *busyPoll) active(now time.Time) bool {
	return b.window > 0 && !b.last.IsZero() && now.Sub(b.last) < b.window
}
