//go:build linux

package benchrate_test

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

var bin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("skipping rate benchmark: it needs root (network namespaces, NFLOG, AF_PACKET)")
		os.Exit(0)
	}
	// PMTUD_BENCH_BIN measures a given binary (e.g. an older build) instead of this tree.
	bin = os.Getenv("PMTUD_BENCH_BIN")
	cleanup := func() {}
	if bin == "" {
		var err error
		if bin, cleanup, err = testnet.BuildDaemon(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// raised lifts every limit between the uplink and the peers, as for the
// issue's rate rows, with a 16 MiB capture buffer. The frame budget counts
// one frame per peer, so with 2 peers it would otherwise cap the sweep at
// half its default rate.
var raised = []string{"--capture-rate", "0", "--capture-source-rate", "0",
	"--source-rate", "10000000", "--source-burst", "10000000",
	"--global-rate", "10000000", "--global-burst", "10000000",
	"--global-frame-rate", "20000000", "--global-frame-burst", "20000000",
	"--capture-buffer", "16777216"}

// TestRateSmoke runs the benchmark for a second at 200 msgs/s so that it
// cannot rot: every message must reach both peers, with a latency.
func TestRateSmoke(t *testing.T) {
	r := newRig(t, bin)
	x := r.run(t, 200, time.Second, true)
	t.Log(x)
	if x.Sent < 150 || x.loss() != 0 {
		t.Errorf("sent %d, relayed %v: want every message relayed", x.Sent, x.Peer)
	}
	if x.LatencySamples != 2*x.Sent || x.P50 <= 0 || x.P99 < x.P50 {
		t.Errorf("latency: %d samples for %d messages, p50 %v p99 %v", x.LatencySamples, x.Sent, x.P50, x.P99)
	}
	m := r.memory(t)
	t.Log(memString(m))
	if m.RSS <= 0 || x.RelayedMetric != float64(x.Sent) {
		t.Errorf("%s, relayed metric %v", memString(m), x.RelayedMetric)
	}
}

// TestRate is the benchmark itself (make bench-rate): set PMTUD_BENCH_RATE=1.
// PMTUD_BENCH_RATES (comma-separated msgs/s) and PMTUD_BENCH_SECS (per
// step) shape the sweep; PMTUD_BENCH_OUT appends the summary to a file.
func TestRate(t *testing.T) {
	if os.Getenv("PMTUD_BENCH_RATE") == "" {
		t.Skip("a benchmark: set PMTUD_BENCH_RATE=1 (make bench-rate)")
	}
	secs := envFloat("PMTUD_BENCH_SECS", 3)
	var out []string
	say := func(f string, a ...any) { s := fmt.Sprintf(f, a...); t.Log(s); out = append(out, s) }

	t.Run("defaults", func(t *testing.T) {
		r := newRig(t, bin)
		say("defaults, %s", r.startString())
		cpu0 := must(benchrate.CPU(r.d.Pid()))
		time.Sleep(5 * time.Second)
		say("defaults, idle: CPU %v in 5 s", must(benchrate.CPU(r.d.Pid()))-cpu0)
		x := r.run(t, 200, 10*time.Second, true)
		say("defaults, 200/s: %v", x)
		x = r.run(t, 1000, 5*time.Second, false)
		say("defaults, 1000/s: %v", x)
		say("defaults: %s", memString(r.memory(t)))
	})
	t.Run("raised", func(t *testing.T) {
		r := newRig(t, bin, raised...)
		say("raised, %s", r.startString())
		x := r.run(t, 200, 10*time.Second, true)
		say("raised, 200/s: %v", x)
		best, lossy := 0.0, 0
		for _, rate := range envRates() {
			x := r.run(t, rate, time.Duration(secs*float64(time.Second)), false)
			say("raised, sweep: %v", x)
			if x.loss() == 0 && float64(x.Sent) >= 0.95*rate*secs {
				best = max(best, rate)
				lossy = 0
			} else if lossy++; lossy == 2 {
				break
			}
		}
		say("raised: highest rate without loss %.0f/s; %s", best, memString(r.memory(t)))
		// Memory a burst grew is given back once capture has been idle a
		// second (Relay.Idle); the daemon logs it.
		if took, ok := r.waitLog("gave back policy table memory", 5*time.Second); ok {
			say("raised: %v later, when the daemon gave back the tables' burst memory: %s", took.Round(time.Millisecond), memString(r.memory(t)))
		} else {
			say("raised: the daemon did not say it gave back memory within 5 s")
		}
	})
	if path := os.Getenv("PMTUD_BENCH_OUT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(f, "== %s %s\n%s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(out, "\n"))
	}
}

func envFloat(k string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil && v > 0 {
		return v
	}
	return def
}

func envRates() []float64 {
	s := os.Getenv("PMTUD_BENCH_RATES")
	if s == "" {
		s = "5000,10000,20000,50000,100000,150000,200000"
	}
	var rs []float64
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err == nil {
			rs = append(rs, v)
		}
	}
	return rs
}
