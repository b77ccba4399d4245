package tunnelwire

import "testing"

func TestWindow(t *testing.T) {
	var w Window
	steps := []struct {
		epoch, ctr uint64
		ts         int64
		want       bool
	}{
		{1, 2000, 10, true},
		{1, 2000, 10, false}, // replay
		{1, 1999, 10, true},  // late, new
		{1, 1999, 10, false},
		{1, 2001, 11, true},
		{1, 2001 - WindowBits + 1, 11, true}, // oldest still in the window
		{1, 2001 - WindowBits, 11, false},    // just outside
		{1, 9000, 12, true},                  // a jump clears the bitmap
		{1, 2001, 12, false},                 // now far behind
		{1, 8990, 12, true},
		{1, 8990, 12, false},
		{2, 0, 12, false}, // new epoch, not newer than what we have: a replay
		{2, 0, 13, true},  // a restarted sender
		{2, 0, 13, false},
		{1, 9001, 13, false}, // the old epoch is not taken back by a datagram no newer
		{2, 1, 14, true},
	}
	for i, s := range steps {
		if got := w.Accept(s.epoch, s.ctr, s.ts); got != s.want {
			t.Fatalf("step %d %+v: got %v", i, s, got)
		}
	}
	if w.Newest() != 14 {
		t.Errorf("Newest = %d", w.Newest())
	}
}

// Every shift distance: what is in the window stays, exactly.
func TestWindowShift(t *testing.T) {
	for n := uint64(1); n <= WindowBits+1; n += 7 {
		var w Window
		w.Accept(1, 1000, 0)
		w.Accept(1, 1000-3, 0)
		w.Accept(1, 1000+n, 0)
		for _, c := range []uint64{1000, 997} {
			inWindow := 1000+n-c < WindowBits
			if got := w.Accept(1, c, 0); got != false && inWindow {
				t.Fatalf("shift %d: counter %d accepted twice", n, c)
			} else if !inWindow && got {
				t.Fatalf("shift %d: counter %d outside the window accepted", n, c)
			}
		}
		if !w.Accept(1, 998, 0) && 1000+n-998 < WindowBits {
			t.Fatalf("shift %d: counter 998 (never seen) refused", n)
		}
	}
}
