package benchrate

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs(t *testing.T) []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// TestWakeLatencySmoke keeps the measurement from rotting: every wake is
// seen once, with a latency above zero and under a second.
func TestWakeLatencySmoke(t *testing.T) {
	cpus := allowedCPUs(t)
	ds, err := WakeLatency(cpus[0], cpus[len(cpus)-1], 20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 20 {
		t.Fatalf("%d samples, want 20", len(ds))
	}
	for _, d := range ds {
		if d <= 0 || d > time.Second {
			t.Fatalf("a wake took %v", d)
		}
	}
}

// TestWakeLatencyUnderLoad: with every CPU busy the sleeper is late to
// its read, so wakes come while it is still on the last one. Each must
// still be counted once and the measurement must end (it once hung in CI
// when two wakes met in the eventfd counter).
func TestWakeLatencyUnderLoad(t *testing.T) {
	cpus := allowedCPUs(t)
	var spin atomic.Bool
	var wg sync.WaitGroup
	spin.Store(true)
	for range 2 * runtime.NumCPU() {
		wg.Go(func() {
			for spin.Load() {
			}
		})
	}
	defer wg.Wait()
	defer spin.Store(false)
	done := make(chan error, 1)
	var ds []time.Duration
	go func() {
		var err error
		ds, err = WakeLatency(cpus[0], cpus[len(cpus)-1], 200, 50*time.Microsecond)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("200 wakes not taken in 30 s")
	}
	if len(ds) != 200 {
		t.Fatalf("%d samples, want 200", len(ds))
	}
}

// TestWakeLatency (PMTUD_BENCH_WAKE=1) is the floor under the rate
// benchmark's latency: how long the kernel takes to run a thread that
// sleeps between messages, woken from another CPU (idle, so halted, in
// between), from its own CPU, and from another CPU while every vCPU is
// kept from halting (KeepCPUsAwake).
func TestWakeLatency(t *testing.T) {
	if os.Getenv("PMTUD_BENCH_WAKE") == "" {
		t.Skip("a benchmark: set PMTUD_BENCH_WAKE=1")
	}
	cpus := allowedCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	const n, gap = 1000, 5 * time.Millisecond // 200 wakes a second, as the rate benchmark's latency rows
	measure := func(name string, waker, sleeper int) {
		ds, err := WakeLatency(waker, sleeper, n, gap)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (CPU %d wakes CPU %d), %d wakes %v apart: p50 %v p90 %v p99 %v max %v", name, waker, sleeper, n, gap,
			Percentile(ds, 50), Percentile(ds, 90), Percentile(ds, 99), Percentile(ds, 100))
	}
	measure("another CPU", cpus[0], cpus[1])
	measure("the same CPU", cpus[0], cpus[0])
	stop, err := KeepCPUsAwake(len(cpus), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	time.Sleep(100 * time.Millisecond) // the loops start
	measure("another CPU, vCPUs kept awake", cpus[0], cpus[1])
}
