//go:build linux

package kube_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/relay"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// BenchmarkRoutedFanout5000 is one full relay (parse, decide, fan-out,
// metrics) to 4,999 peers through the real routed transport (sendmmsg on
// raw sockets), in a network namespace whose peer range routes to a veth
// without ARP: every frame crosses the kernel's transmit path and the veth.
// It reports CPU per relay and the frames per second one node emits.
//
//	go test -run '^$' -bench RoutedFanout5000 -benchtime 200x ./test/kube/
func BenchmarkRoutedFanout5000(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespace and raw sockets")
	}
	ns := newNetns(b)
	wireNamespace(b, ns)
	var s transport.Sender
	if err := netnsutil.Do(ns, func() (err error) {
		s, err = transport.NewRouted(transport.RoutedConfig{TTL: 1})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ps := make([]peers.Peer, scaleNodes-1)
	for i := range ps {
		ps[i] = peers.Peer{Name: fmt.Sprintf("node-%d", i+1), V4: netip.MustParseAddr(nodeIP(i + 1))}
	}
	cfg := policy.DefaultConfig()
	cfg.DedupWindow, cfg.FlowRate, cfg.FlowBurst = time.Nanosecond, 1e9, 1e6
	cfg.SourceRate, cfg.SourceBurst, cfg.GlobalRate, cfg.GlobalBurst = 1e9, 1e6, 1e9, 1e6
	cfg.GlobalFrameRate, cfg.GlobalFrameBurst = 1e12, 1e9 // measure the path, not the budget
	eng, err := policy.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New("routed")
	r := relay.New(relay.Config{Limits: ptb.DefaultLimits(), Engine: eng, Sender: s, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.SetView(policy.NewView(nil, nil, peers.NewSet(ps), nil))
	p := &capture.Packet{Payload: ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("198.51.100.1"),
		VIP: netip.MustParseAddr("172.16.0.1"), Client: netip.MustParseAddr("203.0.113.7"), MTU: 1400, SrcPort: 443, DstPort: 40000}),
		Received: time.Now()}
	frames := func() float64 { return m.FramesSent.Value() }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Received = p.Received.Add(time.Millisecond)
		if got := r.Handle(p); got != drop.None {
			b.Fatalf("relay %d: %v", i, got)
		}
	}
	b.StopTimer()
	if f := frames(); f != float64(b.N*len(ps)) {
		b.Fatalf("%.0f frames for %d relays to %d peers", f, b.N, len(ps))
	}
	b.ReportMetric(frames()/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/frames(), "ns/frame")
}
