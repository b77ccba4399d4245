package capture

import (
	"testing"
	"time"
)

func TestIdleTimer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var off idleTimer
	if d := off.seen(t0); !d.IsZero() {
		t.Fatalf("idling off: a deadline %v was set", d)
	}
	it := idleTimer{after: time.Second}
	if d := it.seen(ms(0)); !d.Equal(ms(1000)) {
		t.Fatalf("first packets: deadline %v, want %v", d, ms(1000))
	}
	// More packets before the deadline set nothing: one deadline a period.
	if d := it.seen(ms(600)); !d.IsZero() {
		t.Fatalf("packets while armed set a deadline %v", d)
	}
	// At the deadline the loop has been quiet only 400 ms: wait the rest.
	if call, d := it.due(ms(1000)); call || !d.Equal(ms(1600)) {
		t.Fatalf("due at 1000 ms after packets at 600: %v, %v; want no call, deadline %v", call, d, ms(1600))
	}
	if call, _ := it.due(ms(1600)); !call {
		t.Fatal("due a second after the last packets: no call")
	}
	// The hook has more to do: again a period later.
	if d := it.done(ms(1600), true); !d.Equal(ms(2600)) {
		t.Fatalf("more to do: next deadline %v, want %v", d, ms(2600))
	}
	if call, _ := it.due(ms(2600)); !call {
		t.Fatal("still quiet a period later: no call")
	}
	// Done: the deadline is cleared, and the next packets arm it again.
	if d := it.done(ms(2600), false); !d.IsZero() {
		t.Fatalf("nothing more to do: deadline %v, want none", d)
	}
	if d := it.seen(ms(5000)); !d.Equal(ms(6000)) {
		t.Fatalf("packets after going idle: deadline %v, want %v", d, ms(6000))
	}
}
