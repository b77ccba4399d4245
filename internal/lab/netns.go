package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces live, the same place `ip netns` uses,
// so a kept lab can be explored with `ip netns exec`.
const netnsDir = "/var/run/netns"

// NS is a named network namespace created by the lab. Everything the lab
// does inside it goes through a handle (netlink, nftables) or through Do,
// never through the calling goroutine's thread.
type NS struct {
	Name   string
	handle netns.NsHandle
	nl     *netlink.Handle
}

// newNS creates the named namespace name and opens a netlink handle in it.
// The creating thread is switched back before it is released; if that
// fails the thread is never unlocked, so it dies with its goroutine.
func newNS(name string) (*NS, error) {
	var h netns.NsHandle
	err := onLockedThread(func() error {
		var err error
		h, err = netns.NewNamed(name)
		return err
	})
	if err != nil {
		// NewNamed may have created the file before failing to mount.
		_ = netns.DeleteNamed(name)
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		_ = netns.DeleteNamed(name)
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return &NS{Name: name, handle: h, nl: nl}, nil
}

// Fd is the namespace's file descriptor (for nftables.WithNetNSFd and the
// like). It stays valid until Close.
func (n *NS) Fd() int { return int(n.handle) }

// Netlink is a netlink handle bound to the namespace.
func (n *NS) Netlink() *netlink.Handle { return n.nl }

// close releases our references; the namespace itself lives on until its
// name is deleted and every socket and process in it is gone.
func (n *NS) close() {
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.handle.IsOpen() {
		n.handle.Close()
	}
}

// onLockedThread runs fn on a fresh goroutine locked to its OS thread and
// restores that thread's network namespace afterwards. If restoring fails
// the goroutine exits still locked, which makes the runtime discard the
// thread instead of reusing it in the wrong namespace.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return // still locked: the thread dies
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return // still locked: the thread dies
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Do runs fn on an OS thread that is inside the namespace. Sockets and
// files opened by fn belong to the namespace for their whole life, whatever
// thread later uses them. fn must not start goroutines that expect to be in
// the namespace.
func (n *NS) Do(fn func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(n.handle); err != nil {
			return fmt.Errorf("enter netns %s: %w", n.Name, err)
		}
		return fn()
	})
}

// Sysctl writes value to /proc/sys/<key> (dots as separators) of this
// namespace. The file is opened on a thread inside the namespace: net
// sysctls resolve to the opener's namespace at open time (see
// TestSysctlStaysInNamespace, which checks the root namespace is unchanged).
func (n *NS) Sysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		cerr := f.Close()
		if werr != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, n.Name, werr)
		}
		return cerr
	})
}

// ReadSysctl reads /proc/sys/<key> of this namespace.
func (n *NS) ReadSysctl(key string) (string, error) {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.readFile(p)
}

// readFile reads a file opened on a thread inside the namespace. Use
// /proc/thread-self/net/... for per-namespace proc files: /proc/self/net
// follows the process's main thread, not ours.
func (n *NS) readFile(p string) (string, error) {
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile(p)
		return err
	})
	return strings.TrimSpace(string(b)), err
}

// DialContext connects from a socket created inside the namespace. local,
// if valid, is the source address to bind.
func (n *NS) DialContext(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{LocalAddr: local}
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listening socket inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListNamespaces returns the names of the named namespaces starting with
// prefix (as created by a lab run with that prefix).
func ListNamespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Teardown removes every namespace whose name starts with prefix+"-",
// first ending the processes still running in them (go-pmtud daemons left
// behind by a lab process that was killed). It is what `go-pmtud lab
// -teardown PREFIX` runs, and what every lab run does on exit.
func Teardown(prefix string) error {
	if !validPrefix(prefix) {
		return fmt.Errorf("invalid lab prefix %q", prefix)
	}
	names, err := ListNamespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := killProcsIn(filepath.Join(netnsDir, name)); err != nil {
			errs = append(errs, err)
		}
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete netns %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// validPrefix keeps Teardown from matching namespaces that are not a lab's.
func validPrefix(p string) bool {
	if len(p) < 3 || len(p) > 8 || !strings.HasPrefix(p, "pl") {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// killProcsIn ends the processes whose network namespace is the one bound
// at nsPath: SIGTERM, then SIGKILL after a bounded wait.
func killProcsIn(nsPath string) error {
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
