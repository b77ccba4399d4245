package capture

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-pmtud/go-pmtud/internal/firewall"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// TestPerCPUCapture: with the firewall's per-CPU dispatch and a Set of
// pinned readers, a PTB handled on CPU k reaches the handler on CPU k
// (its reader woke there, no other CPU was woken), for every CPU of the
// plan, and the Set counts every message.
func TestPerCPUCapture(t *testing.T) {
	l := newLab(t)
	if runtime.NumCPU() < 2 {
		t.Skip("a per-CPU capture needs two CPUs")
	}
	plan := PlanPerCPU([]int{0, 1}, testGroup, MaxPerCPU)
	var groups []firewall.CPUGroup
	for _, b := range plan {
		groups = append(groups, firewall.CPUGroup{CPU: uint32(b.CPU), Group: b.Group})
	}
	tab, err := firewall.New(firewall.Config{Ifaces: []string{"veth0"}, Group: testGroup, CPUGroups: groups}, nftables.WithNetNSFd(l.fdB))
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Install(); err != nil {
		t.Fatalf("install: %v", err)
	}
	if err := tab.Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	set, err := OpenSet(Config{NetNS: l.fdB, Logger: testLogger(t)}, plan)
	if err != nil {
		t.Fatalf("OpenSet: %v", err)
	}
	var mu sync.Mutex
	ranOn := map[int]int{} // the handler's CPU -> messages
	wrong := 0
	want := -1 // the CPU the message in flight was sent from
	arrived := make(chan struct{}, 1)
	handle := func(p *Packet) {
		cpu := getcpu(t)
		mu.Lock()
		ranOn[cpu]++
		if cpu != want {
			wrong++
		}
		mu.Unlock()
		arrived <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.RunBatched(ctx, handle, func() {}) }()

	const perCPU = 20
	ip := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	for _, b := range plan {
		onCPU(t, b.CPU, func() {
			for range perCPU {
				mu.Lock()
				want = b.CPU
				mu.Unlock()
				if err := l.trySend(ip); err != nil { // the softirq, so the rule, runs on this CPU
					t.Errorf("send: %v", err)
					return
				}
				select {
				case <-arrived:
				case <-time.After(2 * time.Second):
					t.Errorf("a PTB sent on CPU %d was not delivered within 2 s", b.CPU)
					return
				}
			}
		})
	}
	mu.Lock()
	t.Logf("handler ran on CPUs %v (messages per CPU)", ranOn)
	if wrong != 0 {
		t.Errorf("%d of %d messages were handled on another CPU than they were logged on", wrong, perCPU*len(plan))
	}
	mu.Unlock()
	if st := set.Stats(); st.Received != uint64(perCPU*len(plan)) || st.Lost != 0 || !set.Up() {
		t.Errorf("Stats %+v, Up %v: want %d received, none lost, up", st, set.Up(), perCPU*len(plan))
	}
	// Readers sleeping in ppoll must wake for Close (else it would hang).
	closed := make(chan error, 1)
	go func() { closed <- set.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return within 2 s: a pinned reader was not woken")
	}
	cancel()
	waitRun(t, done, "Close")
}

// onCPU runs f on a locked OS thread allowed on cpu only.
func onCPU(t *testing.T, cpu int, f func()) {
	t.Helper()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		runtime.LockOSThread() // never unlocked: the narrowed thread exits with the goroutine
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Errorf("pin to CPU %d: %v", cpu, err)
			return
		}
		f()
	}()
	<-ran
}

// getcpu is the CPU the calling thread runs on.
func getcpu(t *testing.T) int {
	var cpu uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 {
		t.Errorf("getcpu: %v", e)
	}
	return int(cpu)
}
