package benchrate

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// WakeLatency measures the floor of any relay that sleeps between
// messages: a thread on wakerCPU writes an eventfd that a thread on
// sleeperCPU waits on in a blocking read(2), n times, gap apart; each
// sample is from just before the write to just after the read returns.
// The waker writes only once the sleeper has taken the last wake: on a
// loaded machine two writes could otherwise meet in the counter, be read
// as one, and leave the sleeper waiting for a wake that never comes.
// With sleeperCPU idle for the gap, that includes waking its CPU from
// halt, which a VM without a cpuidle driver pays in full. Touches no
// namespace and needs no privilege.
func WakeLatency(wakerCPU, sleeperCPU, n int, gap time.Duration) ([]time.Duration, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC) // blocking: the reader sleeps in the kernel
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	defer unix.Close(efd)
	base := time.Now()
	var wrote atomic.Int64 // nanoseconds since base of the last write
	var stop atomic.Bool   // the waker failed
	var taken atomic.Int64 // wakes the sleeper has recorded
	out := make([]time.Duration, 0, n)
	errc := make(chan error, 1)
	go func() { // the sleeper
		errc <- onCPU(sleeperCPU, func() error {
			var b [8]byte
			for range n {
				if _, err := unix.Read(efd, b[:]); err != nil {
					return fmt.Errorf("read: %w", err)
				}
				if stop.Load() {
					return nil
				}
				out = append(out, time.Since(base)-time.Duration(wrote.Load()))
				taken.Add(1)
			}
			return nil
		})
	}()
	werrc := make(chan error, 1)
	go func() {
		werrc <- onCPU(wakerCPU, func() error {
			one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			ts := unix.NsecToTimespec(gap.Nanoseconds())
			for i := range n {
				_ = unix.Nanosleep(&ts, nil) // the sleeper is back in read by now, most times
				for taken.Load() < int64(i) {
					_ = unix.Nanosleep(&ts, nil)
				}
				wrote.Store(int64(time.Since(base)))
				if _, err := unix.Write(efd, one); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			return nil
		})
	}()
	if werr := <-werrc; werr != nil {
		stop.Store(true)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) // let a waiting sleeper go
		return nil, errors.Join(werr, <-errc)
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return out, nil
}

// onCPU runs f on the calling goroutine's OS thread, allowed on cpu only.
// The thread is never unlocked: it ends with the goroutine (call onCPU
// on a goroutine of its own), not reused with a narrowed CPU set.
func onCPU(cpu int, f func() error) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	return f()
}
