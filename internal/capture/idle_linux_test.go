package capture

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestIdleHook: a period after the last packet the hook runs, again a
// period later while it has more to do, then not until packets come again;
// packets keep flowing around it.
func TestIdleHook(t *testing.T) {
	const after = 200 * time.Millisecond
	l := newLab(t)
	l.installFirewall(t)
	calls := make(chan time.Time, 10)
	more := true
	ln, err := Open(Config{Group: testGroup, NetNS: l.fdB, Logger: testLogger(t), IdleAfter: after,
		Idle: func(now time.Time) bool { calls <- now; m := more; more = false; return m }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	handle, ch := collector()
	done := make(chan error, 1)
	go func() { done <- ln.Run(context.Background(), handle) }()

	ip := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	sent := time.Now() // before sending: the packet's arrival, which arms the hook, is later however slow the machine
	l.sendAndExpect(t, ch, ip)
	first := nextCall(t, calls)
	second := nextCall(t, calls)
	t.Logf("idle hook %v and %v after the packet", first.Sub(sent), second.Sub(sent))
	if first.Sub(sent) < after || second.Sub(first) < after {
		t.Errorf("hook at %v and %v after the packet, want a period (%v) apart", first.Sub(sent), second.Sub(sent), after)
	}
	// It said it was done: no call while nothing comes (the loop sleeps),
	// and the next only a period after new packets.
	select {
	case c := <-calls:
		t.Fatalf("the hook ran again %v after the packet, though it had nothing more to do", c.Sub(sent))
	case <-time.After(3 * after):
	}
	sent = time.Now()
	l.sendAndExpect(t, ch, ip)
	if third := nextCall(t, calls); third.Sub(sent) < after {
		t.Errorf("a hook call %v after new packets, want a period (%v) of quiet first", third.Sub(sent), after)
	}
	l.sendAndExpect(t, ch, ip)
	ln.Close()
	waitRun(t, done, "Close")
}

func nextCall(t *testing.T, calls chan time.Time) time.Time {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(2 * time.Second):
		t.Fatal("the idle hook was not called within 2 s")
		return time.Time{}
	}
}
