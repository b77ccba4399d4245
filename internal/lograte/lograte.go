// Package lograte keeps a packet flood from becoming a log flood: a
// Limiter lets through at most PerSecond lines per wall-clock second. It is
// pure (the caller passes the time) and not safe for concurrent use: each
// packet loop owns one.
package lograte

import "time"

// Limiter counts lines per second.
type Limiter struct {
	PerSecond int
	second    int64
	count     int
}

// Allow reports whether one more line may be logged at now.
func (l *Limiter) Allow(now time.Time) bool {
	s := now.Unix()
	if s != l.second {
		l.second, l.count = s, 0
	}
	l.count++
	return l.count <= l.PerSecond
}
