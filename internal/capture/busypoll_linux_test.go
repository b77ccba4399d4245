package capture

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is this process's user and system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOver is the CPU time the process uses during d.
func cpuOver(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	before := cpuTime(t)
	time.Sleep(d)
	return cpuTime(t) - before
}

// TestBusyPoll: with busy polling on, packets are delivered and flushed,
// the receiver spins (uses CPU) within the window after data and stops once
// it passes, and Close returns promptly while it spins.
func TestBusyPoll(t *testing.T) {
	const window = 500 * time.Millisecond
	l := newLab(t)
	l.installFirewall(t)
	ln, err := Open(Config{Group: testGroup, NetNS: l.fdB, BusyPoll: window, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	handle, ch := collector()
	var flushes atomic.Int64
	done := make(chan error, 1)
	go func() { done <- ln.RunBatched(context.Background(), handle, func() { flushes.Add(1) }) }()

	ip := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	idle := cpuOver(t, 100*time.Millisecond)
	l.sendAndExpect(t, ch, ip)
	spin := cpuOver(t, 100*time.Millisecond)
	t.Logf("CPU in 100 ms: %v idle before data, %v within the window after it", idle, spin)
	// Parked, the process uses ~0.2 ms in 100 ms; spinning, a core's
	// worth on a quiet machine, but on a loaded one (CI: 26.7 ms) only its
	// share of one.
	if idle > 20*time.Millisecond || spin < 5*time.Millisecond {
		t.Errorf("CPU in 100 ms: %v before data, %v after it: want ~0, then a busy core", idle, spin)
	}
	time.Sleep(window) // the window has passed: back to the netpoller
	if after := cpuOver(t, 100*time.Millisecond); after > 20*time.Millisecond {
		t.Errorf("CPU in 100 ms after the window: %v, want ~0 (still spinning?)", after)
	}

	// Messages spaced within the window (polled), and after it (waited for).
	for i, gap := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, window + 100*time.Millisecond} {
		time.Sleep(gap)
		lat := l.sendAndExpect(t, ch, ip)
		t.Logf("message %d after %v: wire to handler %v", i, gap, lat)
	}
	waitFor(t, "a flush per batch", func() bool { return flushes.Load() >= 5 })

	// Close while spinning: the last message started a window.
	l.sendAndExpect(t, ch, ip)
	start := time.Now()
	if err := ln.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitRun(t, done, "Close")
	took := time.Since(start)
	t.Logf("Close and Run returned %v after Close while spinning", took)
	if took > window/5 {
		t.Errorf("Close and Run's return took %v while spinning, want well under the %v window", took, window)
	}
	if s := ln.Stats(); s.Received != 6 || s.Lost != 0 || s.Overruns != 0 {
		t.Errorf("Stats = %+v, want 6 received and nothing lost", s)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
