package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

// netnsDir is where named namespaces live, the same place `ip netns` uses,
// so a kept lab can be explored with `ip netns exec`.
const netnsDir = "/var/run/netns"

// NS is a named network namespace created by the lab. Everything the lab
// does inside it goes through a handle (netlink, nftables) or through Do
// (netnsutil), never through the calling goroutine's thread.
type NS struct {
	Name   string
	handle netns.NsHandle
	nl     *netlink.Handle
}

// newNS creates the named namespace name and opens a netlink handle in it.
func newNS(name string) (*NS, error) {
	h, err := netnsutil.NewNamed(name)
	if err != nil {
		return nil, err
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

// Do runs fn on an OS thread inside the namespace (netnsutil.Do).
func (n *NS) Do(fn func() error) error { return netnsutil.Do(n.handle, fn) }

// Sysctl writes /proc/sys/<key> of this namespace (see
// TestSysctlStaysInNamespace, which checks the root namespace is unchanged).
func (n *NS) Sysctl(key, value string) error {
	if err := netnsutil.Sysctl(n.handle, key, value); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// ReadSysctl reads /proc/sys/<key> of this namespace.
func (n *NS) ReadSysctl(key string) (string, error) {
	return n.readFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
}

func (n *NS) readFile(p string) (string, error) { return netnsutil.ReadFile(n.handle, p) }

// DialContext connects from a socket created inside the namespace. local,
// if not nil, is the source address to bind.
func (n *NS) DialContext(ctx context.Context, network, addr string, local net.Addr) (net.Conn, error) {
	return netnsutil.Dial(ctx, n.handle, network, addr, local)
}

// Listen opens a listening socket inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	return netnsutil.Listen(n.handle, network, addr)
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
		errs = append(errs, netnsutil.DeleteNamed(name))
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
