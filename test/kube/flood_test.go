//go:build linux

package kube_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// TestFrameBudgetUnderFlood: the go-pmtud binary with 1,000 static peers
// (routed transport, relays leaving through a dummy device) takes a flood
// of PTBs from 50,000 distinct routers about distinct flows, so no
// per-flow or per-router limit binds; the frames it hands the kernel in
// any one second stay within the default frame budget (40,000/s + 10,000
// burst = 50,000), every message is sent to all peers or none, and the
// rest are counted as rate_limited_frames. Needs no API server.
func TestFrameBudgetUnderFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespace, NFLOG, raw sockets")
	}
	const (
		peers     = 1000
		messages  = 50000
		floodTime = 2500 * time.Millisecond
		budget1s  = 50000 // default --global-frame-rate + --global-frame-burst
	)
	bin := buildDaemon(t)
	ns := newNetns(t)
	wireNamespace(t, ns)
	var list []string
	for i := 1; i <= peers; i++ {
		list = append(list, nodeIP(i))
	}
	d := startDaemon(t, ns, bin, "--kubernetes=false", "--peers="+strings.Join(list, ","), "--transport=routed",
		"--iface=lo", "--log-format=text", "--capture-rate=0", "--capture-source-rate=0", "--capture-buffer=67108864",
		fmt.Sprintf("--nflog-group=%d", 40000+os.Getpid()%20000))
	d.waitMetric(t, "gopmtud_peers_total", peers, 10*time.Second)
	d.waitMetric(t, "gopmtud_firewall_rule_up", 1, 10*time.Second)

	// Messages relayed, sampled every 50 ms while the flood runs and after.
	// The counter is read somewhere between before and after (a scrape
	// takes time, more on a loaded machine). It counts a message when the
	// budget admits it, which is what the budget bounds: the frames counter
	// counts a batch of up to 16 fan-outs only once they are all sent, late
	// on a loaded machine (CI: one fan-out over the budget in a window).
	type sample struct {
		before, after time.Time
		relayed       float64
	}
	scrape := func() sample {
		s := sample{before: time.Now()}
		s.relayed = d.metric(`gopmtud_messages_relayed_total{family="ipv4"}`)
		s.after = time.Now()
		return s
	}
	samples := []sample{scrape()}
	done := make(chan error, 1)
	go func() { done <- flood(ns, messages, floodTime) }()
	for end := time.Now().Add(floodTime + 2*time.Second); time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		samples = append(samples, scrape())
	}
	if err := <-done; err != nil {
		t.Fatalf("flood: %v", err)
	}
	worst := 0.0
	for i, a := range samples {
		for _, b := range samples[i:] {
			// Windows surely under a second, however long the two
			// scrapes took: at most 10,000 + 40,000 x 0.94 frames may
			// pass in one, plus one fan-out admitted on the edge.
			if b.after.Sub(a.before) <= time.Second-60*time.Millisecond {
				worst = max(worst, (b.relayed-a.relayed)*peers)
			}
		}
	}
	relayed := d.metric(`gopmtud_messages_relayed_total{family="ipv4"}`)
	total := d.metric(`gopmtud_frames_sent_total{transport="routed"}`)
	limited := d.metric(`gopmtud_packets_dropped_total{reason="rate_limited_frames"}`)
	received := d.metric("gopmtud_packets_received_total")
	t.Logf("flood: %d PTBs in %v; received %.0f, relayed %.0f (%.0f frames, %.0f in the busiest second), rate_limited_frames %.0f",
		messages, floodTime, received, relayed, total, worst, limited)
	// The bucket: the burst, the rate for the window, one fan-out admitted
	// on the edge.
	if limit := 10000 + 40000*0.94 + peers; worst > limit {
		t.Errorf("%.0f frames in under a second (0.94 s), budget %.0f", worst, limit)
	}
	if total != relayed*peers {
		t.Errorf("%.0f frames for %.0f messages to %d peers: a fan-out was sent in part", total, relayed, peers)
	}
	if limited < received/2 || total < budget1s {
		t.Errorf("the frame budget did not bind as expected: %.0f frames, %.0f limited of %.0f", total, limited, received)
	}
}

// flood sends n PTBs, each from its own router about its own flow, paced
// evenly over d, into ns toward a local VIP (on lo, where the capture is).
func flood(ns netns.NsHandle, n int, d time.Duration) error {
	vip := netip.MustParseAddr("172.16.200.1")
	return netnsutil.Do(ns, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		to := &unix.SockaddrInet4{Addr: vip.As4()}
		start := time.Now()
		for i := range n {
			if due := start.Add(d * time.Duration(i) / time.Duration(n)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
			pkt := ptbtest.Build(ptbtest.Spec{Router: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), VIP: vip,
				Client: netip.MustParseAddr("203.0.113.7"), MTU: 1400, SrcPort: 443, DstPort: uint16(10000 + i%50000)})
			if err := unix.Sendto(s, pkt, 0, to); err != nil && err != unix.ENOBUFS {
				return err
			}
		}
		return nil
	})
}
