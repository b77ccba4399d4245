//go:build linux

package benchrate_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestSendCost measures what the send side of a relay costs the sender's
// thread per frame on this rig: PTB frames written from node 1 to peer 2's
// MAC with sendmmsg, 2 frames per call (what the l2 transport does for one
// message and 2 peers) against 64 per call (a batch of messages). On veth
// the receiving side's kernel work runs in the sender's call and is
// included, as it is in the daemon's CPU. Set PMTUD_BENCH_SENDCOST=1.
func TestSendCost(t *testing.T) {
	if os.Getenv("PMTUD_BENCH_SENDCOST") == "" {
		t.Skip("a benchmark: set PMTUD_BENCH_SENDCOST=1")
	}
	r := newRig(t, bin)
	tmpl := benchrate.NewTemplate(mustAddr(r.s.R4[0]), mustAddr(testnet.VIP4), 1400)
	g, err := benchrate.NewGenerator(r.s.Nodes[0], "eth0", r.s.NodeMAC(t, 1), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, batch := range []int{2, 64, 2, 64} {
		g.Batch = batch
		p := r.next()
		cpu, sent := threadCPU(func() (int, error) {
			n, _, _, err := g.Run(uint64(p)<<benchrate.PhaseShift, 0, 5*time.Second, 100000)
			return n, err
		})
		t.Logf("%2d frames per sendmmsg: %d frames as fast as it goes, sender thread CPU %v = %v per frame (peer counted %d)",
			batch, sent, cpu, cpu/time.Duration(max(sent, 1)), r.peers[0].Count(p))
	}
}

// threadCPU runs f on a locked thread and returns that thread's user+system time.
func threadCPU(f func() (int, error)) (time.Duration, int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var a, b unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &a)
	n, _ := f()
	unix.Getrusage(unix.RUSAGE_THREAD, &b)
	d := time.Duration(b.Utime.Nano() - a.Utime.Nano() + b.Stime.Nano() - a.Stime.Nano())
	return d, n
}
