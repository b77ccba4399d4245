//go:build linux

package benchrate_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// Metric names read from the daemon.
const (
	mReceived = "gopmtud_packets_received_total"
	mRelayed  = `gopmtud_messages_relayed_total{family="ipv4"}`
	mLost     = "gopmtud_capture_lost_total"
)

// rig is one router, the node under test (go-pmtud, l2 transport) and two
// peers that only capture, on one bridge.
type rig struct {
	s      *testnet.Segment
	d      *testnet.Daemon
	gen    *benchrate.Generator
	router *benchrate.Sink
	peers  [2]*benchrate.Sink
	phase  int

	released bool          // the daemon said it released its start-up pages
	first    time.Duration // the warm-up's slowest copy: the first relays
}

// keepAwake keeps every CPU from halting for the test when
// PMTUD_BENCH_AWAKE is set (benchrate.KeepCPUsAwake): the latency of the
// software path, without the hypervisor's wake-up of an idle vCPU.
func keepAwake(t testing.TB) {
	if os.Getenv("PMTUD_BENCH_AWAKE") == "" {
		return
	}
	stop, err := benchrate.KeepCPUsAwake(runtime.NumCPU(), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func newRig(t testing.TB, bin string, extra ...string) *rig {
	t.Helper()
	keepAwake(t)
	s := testnet.NewSegment(t, "pbr", 3, 2) // router 1: the legitimate one of the flood test
	// PMTUD_BENCH_BRNF=1 keeps the switch's bridge netfilter, as the
	// benchmark had it until 2026-12-01, to compare with older figures.
	if os.Getenv("PMTUD_BENCH_BRNF") == "" {
		if err := benchrate.NoBridgeNetfilter(s.Switch); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"--iface", "eth0", "--transport", "l2", "--peers", s.V4[1] + "," + s.V4[2],
		"--nodename", s.Nodes[0], "--log-format", "text", "--log-level", "info"}, extra...)
	if more := os.Getenv("PMTUD_BENCH_ARGS"); more != "" {
		args = append(args, strings.Fields(more)...)
	}
	r := &rig{s: s}
	r.d = testnet.StartDaemon(t, s.Nodes[0], bin, args, nil)
	r.d.WaitReady(t, 10*time.Second)
	r.waitRelease()
	var err error
	tmpl := benchrate.NewTemplate(mustAddr(s.R4[0]), mustAddr(testnet.VIP4), 1400)
	if r.gen, err = benchrate.NewGenerator(s.Routers[0], "eth0", s.NodeMAC(t, 0), tmpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.gen.Close() })
	if r.router, err = benchrate.NewSink(s.Routers[0], "eth0", true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.router.Close() })
	for i := range r.peers {
		if r.peers[i], err = benchrate.NewSink(s.Nodes[i+1], "eth0", false); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.peers[i].Close() })
	}
	if os.Getenv("PMTUD_BENCH_STEER") != "" {
		r.steer(t)
	}
	if !slices.Contains(args, "--dry-run") { // a dry run sends nothing to wait for
		r.warmUp(t)
	}
	return r
}

// waitRelease waits up to 3 s for the daemon to release its start-up
// pages (internal/textpages; within moments of readiness), so that the
// rows measure the daemon as it runs from then on. Older builds never do.
func (r *rig) waitRelease() { _, r.released = r.waitLog("released start-up pages", 3*time.Second) }

// waitLog waits up to timeout for the daemon's log to say something more
// often than it did when called, and returns how long that took.
func (r *rig) waitLog(what string, timeout time.Duration) (time.Duration, bool) {
	start, had := time.Now(), strings.Count(r.d.Log(), what)
	for time.Since(start) < timeout {
		if strings.Count(r.d.Log(), what) > had {
			return time.Since(start), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return timeout, false
}

// warmUp sends one PTB every 20 ms until both peers saw a copy: the l2
// transport has resolved their MACs. The first copies' latency is kept:
// after the release it includes reading the relay's code back in.
func (r *rig) warmUp(t testing.TB) {
	t.Helper()
	p := r.next()
	r.router.Record(p)
	for _, s := range r.peers {
		s.Record(p)
	}
	first := uint64(p) << benchrate.PhaseShift
	for i := range 250 {
		if r.peers[0].Count(p) > 0 && r.peers[1].Count(p) > 0 {
			var x result
			x.collect(r.router, r.peers, p, true)
			r.first = x.PMax
			return
		}
		if _, _, _, err := r.gen.Run(first+uint64(i), 0, time.Second, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no relayed copy reached both peers within 5 s:\n%s", r.d.Log())
}

// startString says how the rig's daemon started: whether it released its
// start-up pages before the warm-up, and the warm-up's first copies.
func (r *rig) startString() string {
	return fmt.Sprintf("start: start-up pages released %v; first relays (warm-up) %v", r.released, r.first)
}

func (r *rig) next() int { r.phase++; return r.phase }

// result is one phase: frames at a fixed rate, what came out, what it cost.
type result struct {
	Rate           float64
	Sent, Refused  int
	Took           time.Duration
	Peer           [2]uint64 // copies counted at each peer
	Received       float64   // NFLOG messages the daemon handled
	RelayedMetric  float64
	CaptureLost    float64
	CPU            time.Duration
	SinkDrops      uint32
	P50, P99, PMax time.Duration
	LatencySamples int
}

func (x result) relayed() uint64 { return min(x.Peer[0], x.Peer[1]) }
func (x result) loss() int64     { return int64(x.Sent) - int64(x.relayed()) }

// cpuPerMsg divides by the messages relayed, or (a dry run) by those the
// daemon received.
func (x result) cpuPerMsg() time.Duration {
	n := float64(x.relayed())
	if n == 0 {
		n = x.Received
	}
	if n == 0 {
		return 0
	}
	return x.CPU / time.Duration(n)
}

func (x result) String() string {
	s := fmt.Sprintf("rate %.0f/s: sent %d (%.0f/s, %d refused) relayed %d/%d loss %d; nflog %v relayed-metric %v capture-lost %v; cpu %v = %v/msg; sink drops %d",
		x.Rate, x.Sent, float64(x.Sent)/x.Took.Seconds(), x.Refused, x.Peer[0], x.Peer[1], x.loss(),
		x.Received, x.RelayedMetric, x.CaptureLost, x.CPU, x.cpuPerMsg(), x.SinkDrops)
	if x.LatencySamples > 0 {
		s += fmt.Sprintf("; latency p50 %v p99 %v max %v (%d samples)", x.P50, x.P99, x.PMax, x.LatencySamples)
	}
	return s
}

// run sends at rate for d, waits for the copies to drain, and measures.
func (r *rig) run(t testing.TB, rate float64, d time.Duration, latency bool) result {
	t.Helper()
	p := r.next()
	if latency {
		r.router.Record(p)
		for _, s := range r.peers {
			s.Record(p)
		}
	}
	r.drops()
	m0 := r.d.Metrics(t)
	cpu0 := must(benchrate.CPU(r.d.Pid()))
	x := result{Rate: rate}
	var err error
	x.Sent, x.Refused, x.Took, err = r.gen.Run(uint64(p)<<benchrate.PhaseShift, rate, d, int(rate*d.Seconds())+1)
	if err != nil {
		t.Fatal(err)
	}
	r.drain(p, x.Sent)
	x.CPU = must(benchrate.CPU(r.d.Pid())) - cpu0
	m1 := r.d.Metrics(t)
	x.Received, x.RelayedMetric, x.CaptureLost = m1[mReceived]-m0[mReceived], m1[mRelayed]-m0[mRelayed], m1[mLost]-m0[mLost]
	x.collect(r.router, r.peers, p, latency)
	return x
}

// collect reads phase p's copies, the sinks' drops and, if recorded, the
// latencies (original leaving the router to copy at a peer, both peers).
func (x *result) collect(router *benchrate.Sink, peers [2]*benchrate.Sink, p int, latency bool) {
	x.Peer = [2]uint64{peers[0].Count(p), peers[1].Count(p)}
	x.SinkDrops = peers[0].Drops() + peers[1].Drops() + router.Drops()
	if !latency {
		return
	}
	sent := router.Times()
	var ls []time.Duration
	for _, s := range peers {
		ls = append(ls, benchrate.Latencies(sent, s.Times())...)
	}
	x.LatencySamples = len(ls)
	x.P50, x.P99, x.PMax = benchrate.Percentile(ls, 50), benchrate.Percentile(ls, 99), benchrate.Percentile(ls, 100)
}

// drain waits until both peers counted every frame of phase p, or their
// counts stopped growing (waitCopies).
func (r *rig) drain(p, sent int) { waitCopies(r.peers, p, sent) }

func (r *rig) drops() uint32 {
	return r.peers[0].Drops() + r.peers[1].Drops() + r.router.Drops()
}

// memory is the daemon's resident memory.
func (r *rig) memory(t testing.TB) benchrate.Mem {
	m, err := benchrate.Memory(r.d.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func memString(m benchrate.Mem) string {
	return fmt.Sprintf("RSS %s (anon %s, file %s), peak (VmHWM) %s", mb(m.RSS), mb(m.Anon), mb(m.File), mb(m.HWM))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
