//go:build linux

package safety_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// Flood bounds: whichever comes first ends it.
const (
	floodFor = 10 * time.Second
	floodMax = 10_000_000
)

// floodTransport is what the daemons run, named explicitly so the frames
// series read below is the one they count in (l2 is the default).
const floodTransport = "l2"

// framesSent is the frames series of floodTransport.
var framesSent = `gopmtud_frames_sent_total{transport="` + floodTransport + `"}`

// captureSourceRate is --capture-source-rate (burst = rate): the default
// 1000, or PMTUD_FLOOD_CAPTURE_SOURCE_RATE to measure layer 1's effect for
// docs/operating-under-attack.md (0 turns it off; the legitimate router's
// share is then only reported, since starving it is what is measured).
var captureSourceRate = func() float64 {
	if v, err := strconv.Atoi(os.Getenv("PMTUD_FLOOD_CAPTURE_SOURCE_RATE")); err == nil {
		return float64(v)
	}
	return 1000
}()

// Defaults the budget is computed from (see docs/policy.md and --help).
const (
	captureRate, captureBurst = 2000, 2000 // --capture-rate; burst = rate
	globalRate, globalBurst   = 1000, 1000
	sourceRate, sourceBurst   = 500, 500 // --source-rate, --source-burst
)

// TestFlood floods node 1 from one router with valid PTBs, every one about
// a different flow (so neither duplicate suppression nor the per-flow limit
// helps), while a second router sends a legitimate PTB every 100 ms.
// go-pmtud must stay alive, stay within the amplification budget, relay
// the legitimate messages during the flood, and relay normally after it.
func TestFlood(t *testing.T) {
	s := testnet.NewSegment(t, "psf", 3, 2)
	// Node 1 relays to B (a go-pmtud) and to C, a witness: a raw socket
	// there sees every copy, so the legitimate router's can be counted.
	args := []string{"--log-level", "info", "--transport", floodTransport,
		"--capture-source-rate", strconv.Itoa(int(captureSourceRate))}
	node := testnet.StartDaemon(t, s.Nodes[0], pmtud, nodeArgs(s, 0, args...), nil)
	b := testnet.StartDaemon(t, s.Nodes[1], pmtud, nodeArgs(s, 1, args...), nil)
	node.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)
	peersOf := []*testnet.Daemon{b}
	w := newWitness(t, s.Nodes[2])
	flood := s.NewFrameInjector(t, 0, 0)
	legit := s.NewFrameInjector(t, 1, 0)
	r4, legit4 := netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R4[1])

	pkts := floodPackets(r4)

	n0 := node.Metrics(t)
	var pb []map[string]float64
	for _, p := range peersOf {
		pb = append(pb, p.Metrics(t))
	}
	cpu0 := cpuTicks(t, node.Pid())

	// The legitimate router: one fresh PTB every 100 ms, counted by
	// whether it was relayed (its router's source bucket is its own, but
	// the in-kernel pre-limit and the global bucket are shared).
	legitDone := legitRouter(t, legit, legit4)
	sent, dropped, took, err := flood.Flood(floodMax, floodFor, func(i int) []byte { return pkts[i&0xffff] })
	legitSent := legitDone()
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	// The tail drains: wait until node 1 has decided all it received.
	drain := time.Now()
	m := testnet.WaitSettled(t, 5*time.Second, node)[0]
	cpu1 := cpuTicks(t, node.Pid())
	d := delta(n0, m)
	secs := took.Seconds() + time.Since(drain).Seconds()

	cpuSecs := float64(cpu1-cpu0) / 100 // USER_HZ
	t.Logf("flood: %d frames in %v (%.0f/s), %d refused by the sender's socket; go-pmtud CPU %.2f s (%.0f%% of one core)",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), dropped, cpuSecs, 100*cpuSecs/secs)
	t.Logf("node: NFLOG delivered %v, relayed %v, frames sent %v (%s); dropped: %v", d[received], d[relayed4],
		d[framesSent], floodTransport, nonZeroDrops(d))

	// Alive, and within the budget.
	if node.Exited() {
		t.Fatalf("go-pmtud died under the flood:\n%s", node.Log())
	}
	checkBudget(t, m, d, secs, legitSent)
	legitRelayed := checkCopies(t, w, peersOf, pb, d)
	// The legitimate router was heard during the flood.
	t.Logf("legitimate router: %d sent during the flood, %d relayed", legitSent, legitRelayed)
	if legitRelayed < legitSent/2 && captureSourceRate > 0 {
		t.Errorf("only %d of %d legitimate messages were relayed during the flood", legitRelayed, legitSent)
	}

	// And it works normally afterwards.
	if body, ok := node.Ready(); !ok {
		t.Errorf("not ready after the flood: %s", body)
	}
	assertRelays(t, s, legit, node, peersOf, legit4, netip.MustParseAddr(s.R6[1]), 61000)
	writeFigures(t, fmt.Sprintf("frames=%d took=%v rate=%.0f/s cpu=%.2fs nflog=%v relayed=%v frames_sent=%v legit=%d/%d",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), cpuSecs, d[received], d[relayed4],
		d[framesSent], legitRelayed, legitSent))
}

// floodPackets are 65536 PTBs from r about distinct flows: client address
// and port vary, checksums right. The clients are in 100.64/16, so the
// witness never mistakes a flood copy for one of the legitimate router's
// (about client4).
func floodPackets(r netip.Addr) [][]byte {
	pkts := make([][]byte, 1<<16)
	for i := range pkts {
		c := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		pkts[i] = ip4(r, nil, icmp4(3, 4, 1400, quote4(vip4, c, 6, tcp(443, uint16(1024+i)))))
	}
	return pkts
}

// legitRouter sends a fresh PTB from legit every 100 ms (at most 200)
// until the returned function is called, which returns how many it sent.
func legitRouter(t *testing.T, legit *testnet.FrameInjector, src netip.Addr) (stop func() int) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	sent := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 200; i++ { // bounded even if stop never comes
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if err := legit.Send(good4(src, 1400, uint16(60000+i))); err != nil {
				t.Errorf("legit send: %v", err)
				return
			}
			sent++
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		return sent
	}
}

// checkBudget checks node 1's counters (m, and d since before the flood
// of secs seconds) against the kernel's pre-limits, the policy's budgets
// and the amplification bound.
func checkBudget(t *testing.T, m, d map[string]float64, secs float64, legitSent int) {
	t.Helper()
	if max := captureBurst + captureRate*secs; d[received] > max {
		t.Errorf("NFLOG delivered %v packets, more than the in-kernel pre-limit allows (%v)", d[received], max)
	}
	// The flooding router's own in-kernel bucket (--capture-source-rate).
	if max := captureSourceRate*(1+secs) + float64(legitSent); captureSourceRate > 0 && d[received] > max {
		t.Errorf("NFLOG delivered %v packets, more than the per-source pre-limit allows (%v)", d[received], max)
	}
	if max := globalBurst + globalRate*secs; d[relayed4] > max {
		t.Errorf("relayed %v messages, more than the global budget (%v)", d[relayed4], max)
	}
	if max := sourceBurst + sourceRate*secs + float64(legitSent); d[relayed4] > max {
		t.Errorf("relayed %v messages, more than one router's budget (%v) and the legitimate ones", d[relayed4], max)
	}
	// The amplification bound: two peers, so at most two frames per relay
	// (v4 only), and so at most twice the global budget. The series must
	// exist: a missing one reads 0 and would pass any bound.
	if _, ok := m[framesSent]; !ok {
		t.Fatalf("no series %s: the daemons do not run the transport the test reads", framesSent)
	}
	frames := d[framesSent]
	if frames == 0 || d[relayed4] == 0 {
		t.Errorf("%v frames for %v relays: the flood was not relayed at all", frames, d[relayed4])
	}
	if frames > 2*d[relayed4] {
		t.Errorf("%v frames for %v relays to 2 peers: amplification above one frame per peer", frames, d[relayed4])
	}
	if max := 2 * (globalBurst + globalRate*secs); frames > max {
		t.Errorf("%v frames, more than 2 peers x the global budget (%v)", frames, max)
	}
}

// checkCopies: the witness and the peers saw no more copies than node 1
// relayed (d), and the peers relayed none. It returns how many of the
// legitimate router's messages the witness saw.
func checkCopies(t *testing.T, w *witness, peersOf []*testnet.Daemon, pb []map[string]float64, d map[string]float64) int {
	t.Helper()
	copies, legitRelayed := w.stop()
	if float64(copies) > d[relayed4] {
		t.Errorf("witness saw %d copies, more than the %v relayed", copies, d[relayed4])
	}
	for i, p := range peersOf {
		pd := delta(pb[i], p.Metrics(t))
		if pd[received] > d[relayed4] {
			t.Errorf("peer %s received %v packets, more than the %v relayed", p.NS, pd[received], d[relayed4])
		}
		if pd[relayed4] != 0 {
			t.Errorf("peer %s relayed %v copies", p.NS, pd[relayed4])
		}
	}

	return legitRelayed
}

// witness counts, in namespace ns, the ICMPv4 copies go-pmtud
// sends there: all of them, and those about the legitimate router's flows
// (quoted destination client4, port 60000-60199).
type witness struct {
	fd     int
	done   chan struct{}
	all    int
	legit  int
	cancel chan struct{}
}

func newWitness(t *testing.T, ns string) *witness {
	t.Helper()
	w := &witness{fd: -1, done: make(chan struct{}), cancel: make(chan struct{})}
	err := netnsutil.DoNamed(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		w.fd = fd
		// Room for every copy the budget allows, in case reading lags.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	})
	if err != nil {
		t.Fatalf("witness in %s: %v", ns, err)
	}
	go func() {
		defer close(w.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(w.fd, buf, 0)
			if err != nil {
				select {
				case <-w.cancel:
					return
				default:
					continue // timeout: look at cancel again
				}
			}
			p := buf[:n]
			ihl := int(p[0]&0x0f) * 4
			if n < ihl+8+20+4 || p[ihl] != 3 || p[ihl+1] != 4 {
				continue
			}
			w.all++
			q := p[ihl+8:]
			dport := binary.BigEndian.Uint16(q[int(q[0]&0x0f)*4+2:])
			if netip.AddrFrom4([4]byte(q[16:20])) == client4 && dport >= 60000 && dport < 60200 {
				w.legit++
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop waits for the socket to drain (reads time out) and returns the counts.
func (w *witness) stop() (all, legit int) {
	select {
	case <-w.cancel:
	default:
		close(w.cancel)
	}
	<-w.done
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
	return w.all, w.legit
}

// cpuTicks is utime+stime of pid in clock ticks (proc(5)).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ut + st
}

func nonZeroDrops(d map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range d {
		if v != 0 && strings.HasPrefix(k, "gopmtud_packets_dropped_total") {
			out[strings.TrimSuffix(strings.TrimPrefix(k, `gopmtud_packets_dropped_total{reason="`), `"}`)] = v
		}
	}
	return out
}

// writeFigures appends a line to $PMTUD_FLOOD_FIGURES, if set, for docs.
func writeFigures(t *testing.T, line string) {
	path := os.Getenv("PMTUD_FLOOD_FIGURES")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
