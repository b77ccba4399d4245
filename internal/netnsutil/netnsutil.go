//go:build linux

// Package netnsutil runs code inside another network namespace without
// leaking that namespace to unrelated goroutines.
//
// Sockets are created in the namespace of the calling OS thread and keep it
// for their lifetime, so the usual pattern is: open sockets inside Do, then
// use them from any goroutine afterwards.
package netnsutil

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a dedicated OS thread switched into ns and returns fn's error.
//
// The thread is switched back before it is released to the scheduler. If the
// switch back fails the thread stays locked, so the Go runtime terminates it
// when the goroutine exits instead of reusing a thread in the wrong namespace.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnsutil: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns(2) failed, so the thread is still in orig.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnsutil: enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("netnsutil: restore namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DoNamed is Do for a namespace created by `ip netns add name`.
func DoNamed(name string, fn func() error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("netnsutil: namespace %q: %w", name, err)
	}
	defer ns.Close()
	return Do(ns, fn)
}
