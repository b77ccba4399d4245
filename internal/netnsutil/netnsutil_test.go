//go:build linux

package netnsutil_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

func needRoot(t *testing.T) {
	t.Helper()
	testnet.NeedRoot(t)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Do runs fn inside the namespace, and neither the caller's thread nor the
// process's namespace changes; DeleteNamed ends what runs inside and
// removes the name.
func TestDoNewNamedDeleteNamed(t *testing.T) {
	needRoot(t)
	name := fmt.Sprintf("nsu%04x", rand.IntN(0xffff))
	h, err := netnsutil.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	root := inode(t, "/proc/thread-self/ns/net")
	want := inode(t, "/var/run/netns/"+name)
	var inside uint64
	if err := netnsutil.Do(h, func() error {
		inside = inode(t, "/proc/thread-self/ns/net")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside != want || inside == root {
		t.Errorf("inside Do: namespace inode %d, want %d (root %d)", inside, want, root)
	}
	if got := inode(t, "/proc/thread-self/ns/net"); got != root {
		t.Errorf("caller's namespace changed: %d, want %d", got, root)
	}
	if err := netnsutil.Sysctl(h, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := netnsutil.ReadFile(h, "/proc/sys/net/ipv4/ip_forward"); err != nil || v != "1" {
		t.Errorf("ip_forward in the namespace = %q, %v; want 1", v, err)
	}
	// A process inside, as a daemon left behind would be.
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := netnsutil.Do(h, cmd.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := netnsutil.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the process inside survived DeleteNamed")
	}
	if _, err := os.Stat("/var/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("namespace name still there: %v", err)
	}
}
