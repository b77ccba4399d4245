package capture

import (
	"testing"
	"time"
)

func TestBusyPollWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := []struct {
		name   string
		window time.Duration
		last   time.Time // zero: no data yet
		now    time.Time
		want   bool
	}{
		{"off", 0, t0, t0, false},
		{"off long after", 0, t0, t0.Add(time.Hour), false},
		{"no data yet", 10 * ms, time.Time{}, t0, false},
		{"at the data", 10 * ms, t0, t0, true},
		{"inside the window", 10 * ms, t0, t0.Add(9 * ms), true},
		{"window over", 10 * ms, t0, t0.Add(10 * ms), false},
		{"long after", 10 * ms, t0, t0.Add(time.Hour), false},
		{"clock behind the data", 10 * ms, t0, t0.Add(-ms), true},
	}
	for _, tt := range tests {
		b := busyPoll{window: tt.window}
		if !tt.last.IsZero() {
			b.seen(tt.last)
		}
		if got := b.active(tt.now); got != tt.want {
			t.Errorf("%s: active = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestBusyPollFollowsData: each datagram extends the window.
func TestBusyPollFollowsData(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := busyPoll{window: 5 * time.Millisecond}
	for i := range 10 {
		now := t0.Add(time.Duration(i) * 4 * time.Millisecond) // every 4 ms: never idle 5 ms
		if i > 0 && !b.active(now) {
			t.Fatalf("message %d: stopped polling though data came 4 ms ago", i)
		}
		b.seen(now)
	}
	if b.active(t0.Add(36*time.Millisecond + 5*time.Millisecond)) {
		t.Error("still polling 5 ms after the last data")
	}
}
