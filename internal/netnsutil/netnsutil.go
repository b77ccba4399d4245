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
	return onLockedThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("netnsutil: enter namespace: %w", err)
		}
		return fn()
	})
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

// NewNamed creates the network namespace name (bound under /var/run/netns,
// as `ip netns add` does) and returns a handle to it. The creating thread
// is switched back before it is released (see Do).
func NewNamed(name string) (netns.NsHandle, error) {
	h := netns.None()
	err := onLockedThread(func() error {
		var err error
		h, err = netns.NewNamed(name)
		return err
	})
	if err != nil {
		// NewNamed may have created the file before failing to mount.
		_ = netns.DeleteNamed(name)
		return netns.None(), fmt.Errorf("netnsutil: create namespace %s: %w", name, err)
	}
	return h, nil
}

// onLockedThread runs fn on a fresh goroutine locked to its OS thread and
// restores that thread's namespace afterwards; if that fails the goroutine
// exits still locked and the runtime discards the thread.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("netnsutil: current namespace: %w", err)
			return // still locked: the thread dies
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netnsutil: restore namespace: %w", err))
			return // still locked: the thread dies
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
