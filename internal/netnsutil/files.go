//go:build linux

package netnsutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sysctl writes value to /proc/sys/<key> (dots as separators) of ns. The
// file is opened on a thread inside ns: net sysctls resolve to the
// opener's namespace at open time.
func Sysctl(ns netns.NsHandle, key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return Do(ns, func() error {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		cerr := f.Close()
		if werr != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, werr)
		}
		return cerr
	})
}

// ReadFile reads a file opened on a thread inside ns, trimmed. Use
// /proc/thread-self/net/... for per-namespace proc files: /proc/self/net
// follows the process's main thread, not ours.
func ReadFile(ns netns.NsHandle, path string) (string, error) {
	var b []byte
	err := Do(ns, func() error {
		var err error
		b, err = os.ReadFile(path)
		return err
	})
	return strings.TrimSpace(string(b)), err
}

// Dial connects from a socket created inside ns; local, if not nil, is
// the address to bind.
func Dial(ctx context.Context, ns netns.NsHandle, network, addr string, local net.Addr) (net.Conn, error) {
	var c net.Conn
	err := Do(ns, func() error {
		d := net.Dialer{LocalAddr: local}
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listening socket inside ns.
func Listen(ns netns.NsHandle, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// KillProcsIn ends the processes whose network namespace is the one bound
// at nsPath (e.g. daemons left behind by a killed test): SIGTERM, then
// SIGKILL after a bounded wait. The calling process is spared.
func KillProcsIn(nsPath string) error {
	var want unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		return nil // already gone
	}
	find := func() []int {
		ents, _ := os.ReadDir("/proc")
		var pids []int
		for _, e := range ents {
			var pid int
			if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
				continue
			}
			if st.Ino == want.Ino && st.Dev == want.Dev {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	pids := find()
	if len(pids) == 0 {
		return nil
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	for i := 0; i < 50 && len(find()) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range find() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return nil
}

// DeleteNamed ends the processes in the named namespace and removes its
// name. A namespace already gone is not an error.
func DeleteNamed(name string) error {
	var errs []error
	if err := KillProcsIn("/var/run/netns/" + name); err != nil {
		errs = append(errs, err)
	}
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("delete namespace %s: %w", name, err))
	}
	return errors.Join(errs...)
}
