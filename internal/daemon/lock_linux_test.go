package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Helper modes of the test binary, run in a namespace by the tests below.
const helperEnv = "GO_PMTUD_LOCK_HELPER"

// TestLockHelper is not a test: it is the squatter (as nobody) or the
// holder (as root) the lock tests start. It reports on stdout and then
// waits to be killed.
func TestLockHelper(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	switch mode {
	case "squat":
		// What an unprivileged process can take: the old abstract socket,
		// but not the table.
		_, aerr := lockAbstract()
		_, terr := lockInstance()
		fmt.Printf("abstract=%v table=%v\n", aerr == nil, errors.Is(terr, unix.EPERM))
	case "hold":
		_, err := lockInstance()
		fmt.Printf("held=%v\n", err == nil)
	}
	time.Sleep(time.Minute)
}

func newNamespace(t *testing.T) (string, netns.NsHandle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := fmt.Sprintf("pmtud-lock-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return name, h
}

// startHelper runs this test binary in mode inside namespace ns (as uid
// nobody when unprivileged) and returns its first line of output.
func startHelper(t *testing.T, ns, mode string, unprivileged bool) (*exec.Cmd, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nobody must be able to execute the binary: a world-readable copy.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if out, err := exec.Command("cp", self, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	args := []string{"netns", "exec", ns}
	if unprivileged {
		args = append(args, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all")
	}
	args = append(args, bin, "-test.run=^TestLockHelper$")
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-lines:
		return cmd, l
	case <-time.After(30 * time.Second):
		t.Fatalf("helper %s said nothing", mode)
	}
	return nil, ""
}

func lockTables(t *testing.T, h netns.NsHandle) int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tb := range ts {
		if tb.Name == lockTable {
			n++
		}
	}
	return n
}

func TestUnprivilegedSquatterCannotBlockTheLock(t *testing.T) {
	ns, h := newNamespace(t)
	_, said := startHelper(t, ns, "squat", true)
	// It could take the old abstract socket, and was refused the table.
	if said != "abstract=true table=true" {
		t.Fatalf("squatter: %q, want abstract=true table=true", said)
	}
	lock, err := lockInstanceIn(int(h))
	if err != nil {
		t.Fatalf("squatter kept go-pmtud from locking: %v", err)
	}
	defer lock.Close()
	if n := lockTables(t, h); n != 1 {
		t.Fatalf("%d lock tables", n)
	}
}

func TestSecondInstanceRefusedAndSIGKILLFreesTheLock(t *testing.T) {
	ns, h := newNamespace(t)
	holder, said := startHelper(t, ns, "hold", false)
	if said != "held=true" {
		t.Fatalf("holder: %q", said)
	}
	if l, err := lockInstanceIn(int(h)); !errors.Is(err, errLockTaken) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second instance: %v, want %v", err, errLockTaken)
	}
	if err := syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	// The kernel drops the table as the holder's socket closes.
	if n := lockTables(t, h); n != 0 {
		t.Fatalf("%d lock tables after SIGKILL", n)
	}
	lock, err := lockInstanceIn(int(h))
	if err != nil {
		t.Fatalf("after the holder's SIGKILL: %v", err)
	}
	lock.Close()
	if n := lockTables(t, h); n != 0 {
		t.Fatalf("%d lock tables after Close", n)
	}
}
