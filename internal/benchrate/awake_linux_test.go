package benchrate

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The busy loops run at SCHED_IDLE while they run, and stop leaves none
// behind (they are timeout's children: killing timeout alone would not).
func TestKeepCPUsAwakeStopsItsLoops(t *testing.T) {
	if _, err := exec.LookPath("chrt"); err != nil {
		t.Skip("chrt (util-linux) is not installed")
	}
	stop, err := KeepCPUsAwake(2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// This test's loops are in process groups led by its own children
	// (timeout); other busy loops on the machine are not counted. Groups
	// are learned while their leaders live, to be recognised after stop.
	ours := map[string]bool{}
	me := strconv.Itoa(os.Getpid())
	loops := func() (n int, idle bool) {
		out, _ := exec.Command("ps", "-eo", "cls=,pgid=,pid=,ppid=,args=").Output()
		lines := strings.Split(string(out), "\n")
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 3 && f[3] == me {
				ours[f[2]] = true // a child of ours, so maybe a group leader
			}
		}
		idle = true
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) > 4 && f[4] == "sh" && strings.Contains(l, "while :; do :; done") && ours[f[1]] {
				n++
				idle = idle && f[0] == "IDL"
			}
		}
		return n, idle
	}
	// At SCHED_IDLE even their exec waits for an idle CPU: on a loaded
	// machine (CI) that may take a while.
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := loops(); n < 2; n, _ = loops() {
		if time.Now().After(deadline) {
			t.Fatalf("%d busy loops running, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, idle := loops(); !idle {
		t.Error("a busy loop is not at SCHED_IDLE")
	}
	stop()
	// Killed, a SCHED_IDLE loop still has to run to exit, which a busy
	// machine (CI) may put off for a while: wait for them to go.
	deadline = time.Now().Add(30 * time.Second)
	for n, _ := loops(); n != 0; n, _ = loops() {
		if time.Now().After(deadline) {
			t.Fatalf("%d busy loops left 30 s after stop (pid %d)", n, os.Getpid())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
