// Package lograte keeps a packet flood from becoming a log flood: a
// Limiter lets through at most PerSecond lines per wall-clock second. It is
// pure (the caller passes the time) and safe for concurrent use (the
// tunnel receiver logs from more than one goroutine); it is asked only when
// a line would be logged, so the lock costs the packet path nothing.
package lograte

import (
	"sync"
	"time"
)

// Limiter counts lines per second.
type Limiter struct {
	PerSecond int
	mu        sync.Mutex
	second    int64
	count     int
}

// Allow reports whether one more line may be logged at now.
func (l *Limiter) Allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := now.Unix()
	if s != l.second {
		l.second, l.count = s, 0
	}
	l.count++
	return l.count <= l.PerSecond
}
