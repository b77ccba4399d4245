//go:build linux

package benchrate_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestRateCloudflare measures cloudflare/pmtud on the same rig and steps as
// TestRate's raised rows, so both tools are compared in one run on one
// machine. PMTUD_BENCH_CLOUDFLARE is the path of a pmtud binary built from
// its sources (not part of this project; docs/benchmarks.md says how). It
// reads NFLOG group 33 fed by an nft rule with queue threshold 1 (its best
// latency setting) and broadcasts each message on the node's uplink, with
// its rate limits raised.
func TestRateCloudflare(t *testing.T) {
	cf := os.Getenv("PMTUD_BENCH_CLOUDFLARE")
	if cf == "" {
		t.Skip("a benchmark: set PMTUD_BENCH_CLOUDFLARE=/path/to/cloudflare/pmtud")
	}
	r := newCloudflareRig(t, cf)
	var out []string
	say := func(f string, a ...any) { s := fmt.Sprintf(f, a...); t.Log(s); out = append(out, s) }
	cpu0 := must(benchrate.CPU(r.pid))
	time.Sleep(5 * time.Second)
	say("cloudflare, idle: CPU %v in 5 s", must(benchrate.CPU(r.pid))-cpu0)
	say("cloudflare, 200/s: %v", r.run(t, 200, 10*time.Second, true))
	secs := envFloat("PMTUD_BENCH_SECS", 3)
	best, lossy := 0.0, 0
	for _, rate := range envRates() {
		x := r.run(t, rate, time.Duration(secs*float64(time.Second)), false)
		say("cloudflare, sweep: %v", x)
		if x.loss() == 0 && float64(x.Sent) >= 0.95*rate*secs {
			best, lossy = max(best, rate), 0
		} else if lossy++; lossy == 2 {
			break
		}
	}
	m := must(benchrate.Memory(r.pid))
	say("cloudflare: highest rate without loss %.0f/s; %s", best, memString(m))
	if path := os.Getenv("PMTUD_BENCH_OUT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "== %s %s\n%s\n", time.Now().UTC().Format(time.RFC3339), cf, strings.Join(out, "\n"))
	}
}

// cfRig is the rig of TestRate with cloudflare/pmtud on node 1.
type cfRig struct {
	gen    *benchrate.Generator
	router *benchrate.Sink
	peers  [2]*benchrate.Sink
	pid    int
	log    *bytes.Buffer
	phase  int
}

func newCloudflareRig(t *testing.T, bin string) *cfRig {
	keepAwake(t)
	s := testnet.NewSegment(t, "pcf", 3, 2)
	if os.Getenv("PMTUD_BENCH_BRNF") == "" { // as newRig: the switch is not the node's work
		if err := benchrate.NoBridgeNetfilter(s.Switch); err != nil {
			t.Fatal(err)
		}
	}
	node := s.Nodes[0]
	rule := "table inet cfbench {\n chain in {\n type filter hook input priority 0\n" +
		" icmp type destination-unreachable icmp code frag-needed log group 33 queue-threshold 1\n }\n}\n"
	nft := exec.Command("ip", "netns", "exec", node, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rule)
	if b, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, b)
	}
	r := &cfRig{log: new(bytes.Buffer)}
	// `ip netns exec` execs the binary: the pid is the daemon's own.
	cmd := exec.Command("ip", "netns", "exec", node, bin, "--iface=eth0", "--nflog=33",
		"--src-rate=10000000", "--iface-rate=10000000")
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r.pid = cmd.Process.Pid
	var err error
	tmpl := benchrate.NewTemplate(mustAddr(s.R4[0]), mustAddr(testnet.VIP4), 1400)
	r.gen = must(benchrate.NewGenerator(s.Routers[0], "eth0", s.NodeMAC(t, 0), tmpl))
	t.Cleanup(func() { r.gen.Close() })
	r.router = must(benchrate.NewSink(s.Routers[0], "eth0", true))
	t.Cleanup(func() { r.router.Close() })
	for i := range r.peers {
		if r.peers[i], err = benchrate.NewSink(s.Nodes[i+1], "eth0", false); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.peers[i].Close() })
	}
	r.warmUp(t)
	return r
}

// warmUp waits until a message reaches both peers: pmtud is bound and sending.
func (r *cfRig) warmUp(t *testing.T) {
	r.phase++
	first := uint64(r.phase) << benchrate.PhaseShift
	for i := range 250 {
		if r.peers[0].Count(r.phase) > 0 && r.peers[1].Count(r.phase) > 0 {
			return
		}
		if _, _, _, err := r.gen.Run(first+uint64(i), 0, time.Second, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("cloudflare/pmtud relayed nothing within 5 s:\n%s", r.log)
}

// run is rig.run without the daemon's own counters (pmtud exports none).
func (r *cfRig) run(t *testing.T, rate float64, d time.Duration, latency bool) result {
	r.phase++
	p := r.phase
	if latency {
		r.router.Record(p)
		for _, s := range r.peers {
			s.Record(p)
		}
	}
	cpu0 := must(benchrate.CPU(r.pid))
	x := result{Rate: rate}
	var err error
	x.Sent, x.Refused, x.Took, err = r.gen.Run(uint64(p)<<benchrate.PhaseShift, rate, d, int(rate*d.Seconds())+1)
	if err != nil {
		t.Fatal(err)
	}
	waitCopies(r.peers, p, x.Sent)
	x.CPU = must(benchrate.CPU(r.pid)) - cpu0
	x.collect(r.router, r.peers, p, latency)
	return x
}

// waitCopies waits until both peers counted sent copies of phase p, or
// their counts stopped growing for 300 ms, at most 5 s.
func waitCopies(peers [2]*benchrate.Sink, p, sent int) {
	deadline := time.Now().Add(5 * time.Second)
	last, still := uint64(0), time.Now()
	for time.Now().Before(deadline) {
		a, b := peers[0].Count(p), peers[1].Count(p)
		if a >= uint64(sent) && b >= uint64(sent) {
			return
		}
		if a+b != last {
			last, still = a+b, time.Now()
		} else if time.Since(still) > 300*time.Millisecond {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
