//go:build linux

package benchrate_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// steer pins every thread of the daemon to CPU 0 and steers the frames it
// sends (received by the switch port of node 0) to CPU 1 with RPS, inside
// the switch's namespace. On veth the receiver's whole path (bridge, the
// peers' IP stacks, the capture sockets) otherwise runs in the sender's
// context and is charged to the daemon; on real hosts it runs on the peers.
// An attribution experiment (PMTUD_BENCH_STEER=1), not the headline figure.
func (r *rig) steer(t testing.TB) {
	t.Helper()
	port := fmt.Sprintf("p%d", r.s.NodePort(0))
	out, err := exec.Command("ip", "netns", "exec", r.s.Switch, "sh", "-c",
		"echo 2 > /sys/class/net/"+port+"/queues/rx-0/rps_cpus").CombinedOutput()
	if err != nil {
		t.Fatalf("rps on %s: %v %s", port, err, out)
	}
	var set unix.CPUSet
	set.Set(0)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", r.d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			t.Fatalf("pin thread %d: %v", tid, err)
		}
	}
}
