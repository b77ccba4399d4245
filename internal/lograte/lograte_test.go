package lograte

import (
	"testing"
	"time"
)

func TestLimiterAllowsPerSecondThenWaitsForTheNextSecond(t *testing.T) {
	l := Limiter{PerSecond: 3}
	t0 := time.Unix(100, 0)
	got := 0
	for i := 0; i < 10; i++ {
		if l.Allow(t0.Add(time.Duration(i) * time.Millisecond)) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("%d lines allowed within one second, want 3", got)
	}
	if !l.Allow(t0.Add(time.Second)) {
		t.Fatal("a new second must allow lines again")
	}
}
