//go:build linux

package benchrate_test

import (
	"os"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// Defaults the flood budget is computed from (docs/policy.md, --help).
const (
	captureSourceRate = 1000 // per router, in kernel; burst = rate
	sourceRate        = 500  // per router, policy; burst = rate
	globalRate        = 1000 // all routers, policy; burst = rate
)

// TestRateFlood floods the node from router 0 for 10 s as fast as the
// generator goes (bounded at 10 M frames), every PTB about a different flow,
// while router 1 sends 10 legitimate PTBs a second; default settings. It
// reports the daemon's CPU and checks the budget and that every legitimate
// message was relayed. Set PMTUD_BENCH_FLOOD=1 (a benchmark: 10 s of a core).
func TestRateFlood(t *testing.T) {
	if os.Getenv("PMTUD_BENCH_FLOOD") == "" {
		t.Skip("a benchmark: set PMTUD_BENCH_FLOOD=1")
	}
	const dur = 10 * time.Second
	r := newRig(t, bin)
	tmpl := benchrate.NewTemplate(mustAddr(r.s.R4[1]), mustAddr(testnet.VIP4), 1400)
	legit, err := benchrate.NewGenerator(r.s.Routers[1], "eth0", r.s.NodeMAC(t, 0), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	lp, fp := r.next(), r.next()
	m0 := r.d.Metrics(t)
	cpu0 := must(benchrate.CPU(r.d.Pid()))
	legitSent := make(chan int, 1)
	go func() {
		n, _, _, err := legit.Run(uint64(lp)<<benchrate.PhaseShift, 10, dur, 100)
		if err != nil {
			t.Error(err)
		}
		legitSent <- n
	}()
	sent, refused, took, err := r.gen.Run(uint64(fp)<<benchrate.PhaseShift, 0, dur, 10_000_000)
	if err != nil {
		t.Fatal(err)
	}
	ls := <-legitSent
	time.Sleep(500 * time.Millisecond) // the tail
	cpu := must(benchrate.CPU(r.d.Pid())) - cpu0
	m := r.d.Metrics(t)
	secs := took.Seconds() + 0.5
	nflog, relayed := m[mReceived]-m0[mReceived], m[mRelayed]-m0[mRelayed]
	legitGot := min(r.peers[0].Count(lp), r.peers[1].Count(lp))
	t.Logf("flood: %d frames in %v (%.0f/s, %d refused); NFLOG delivered %.0f, relayed %.0f (flood copies at the peers %d/%d); daemon CPU %v (%.1f%% of a core); legitimate %d sent, %d relayed; %s",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), refused, nflog, relayed,
		r.peers[0].Count(fp), r.peers[1].Count(fp), cpu, 100*cpu.Seconds()/secs, ls, legitGot, memString(r.memory(t)))
	if max := captureSourceRate*(1+secs) + float64(ls); nflog > max {
		t.Errorf("NFLOG delivered %v, more than the per-router pre-limit allows (%v)", nflog, max)
	}
	if max := sourceRate*(1+secs) + float64(ls); relayed > max {
		t.Errorf("relayed %v, more than one router's budget plus the legitimate ones (%v)", relayed, max)
	}
	if max := globalRate * (1 + secs); relayed > max {
		t.Errorf("relayed %v, more than the global budget (%v)", relayed, max)
	}
	if legitGot != uint64(ls) {
		t.Errorf("legitimate router: %d sent, %d relayed to both peers", ls, legitGot)
	}
}
