package relay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// countingSender stands in for a transport: it touches every peer it is
// given (as a real one builds one frame each) and, when failAll is set,
// reports every peer as failed.
type countingSender struct {
	failAll bool
	touched int
}

var errBench = errors.New("bench: unreachable")

func (c *countingSender) Name() string                      { return "bench" }
func (c *countingSender) Close() error                      { return nil }
func (c *countingSender) SetPeers([]peers.Peer)             {}
func (c *countingSender) PeerMACs() [][6]byte               { return nil }
func (c *countingSender) PeerStates() []transport.PeerState { return nil }
func (c *countingSender) StateChanged() <-chan struct{}     { return nil }
func (c *countingSender) SendBatch(ms []transport.Outgoing, onErr func(int, int, error)) int {
	n := 0
	for j := range ms {
		ms[j].Sent = c.Send(ms[j].M, ms[j].To, func(i int, err error) { onErr(j, i, err) })
		n += ms[j].Sent
	}
	return n
}

func (c *countingSender) Send(_ *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	n := 0
	for i := range to {
		c.touched++
		if c.failAll {
			onErr(i, errBench)
			continue
		}
		n++
	}
	return n
}

// scalePeers returns n IPv4 peers named like Kubernetes nodes.
func scalePeers(n int) []peers.Peer {
	ps := make([]peers.Peer, n)
	for i := range ps {
		ps[i] = peers.Peer{Name: fmt.Sprintf("node-%d", i+1), V4: netip.AddrFrom4([4]byte{10, byte(64 + i>>16), byte(i >> 8), byte(i)})}
	}
	return ps
}

// linearPeerName is how the daemon named a failed peer before issue 13:
// a scan of the whole set per failure.
func linearPeerName(s *peers.Set, addr netip.Addr) string {
	for _, p := range s.All() {
		if p.Has(addr) {
			return p.Name
		}
	}
	return addr.String()
}

// BenchmarkFanout5000 is one full relay (parse, decide, fan-out, count) to
// 4,999 peers through a fake sender that touches every peer (no syscall):
// "ok" sends to all; "failing" reports every peer as failed, counted per
// peer by the relay's book; "failing-linear" adds the daemon's callback
// from before issue 13, which named each failed peer by scanning the set.
func BenchmarkFanout5000(b *testing.B) {
	for _, c := range []struct {
		name         string
		fail, linear bool
	}{{"ok", false, false}, {"failing", true, false}, {"failing-linear", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			r, s, set, m := scaleRelay(b, 4999, c.fail)
			if c.linear {
				r.onErr = func(j, i int, _ error) {
					m.SendErrors.WithLabelValues(linearPeerName(set, r.out[j].To[i].Addr())).Inc()
				}
			}
			benchRelay(b, r, s)
		})
	}
}

// BenchmarkFanoutTargeted5000 is one relay among 4,999 peers about a Local
// Service with endpoints on 3 of them: the targeted fan-out's own cost.
func BenchmarkFanoutTargeted5000(b *testing.B) {
	r, s, _, _ := scaleRelay(b, 4999, false)
	r.SetFanout(fanout.Build(
		[]fanout.Service{{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{vip}, Ports: []fanout.Port{{Port: 80, Proto: fanout.TCP}}}},
		[]fanout.Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-17", "node-2500", "node-4999"}}}))
	benchRelay(b, r, s)
	if s.touched != 3*b.N {
		b.Fatalf("touched %d peers in %d relays, want 3 each", s.touched, b.N)
	}
}

func scaleRelay(b *testing.B, n int, fail bool) (*Relay, *countingSender, *peers.Set, *metrics.Metrics) {
	eng, err := policy.New(policy.Config{DedupWindow: time.Nanosecond, FlowRate: 1e9, FlowBurst: 1e6, SourceRate: 1e9, SourceBurst: 1e6,
		GlobalRate: 1e9, GlobalBurst: 1e6, GlobalFrameRate: 1e12, GlobalFrameBurst: 1e9, MaxTracked: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New("bench")
	set := peers.NewSet(scalePeers(n))
	s := &countingSender{failAll: fail}
	r := New(Config{Limits: ptb.DefaultLimits(), Engine: eng, Sender: s, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.SetView(policy.NewView([]netip.Addr{self}, nil, set, nil))
	return r, s, set, m
}

func benchRelay(b *testing.B, r *Relay, s *countingSender) {
	pkts := make([]*capture.Packet, 256)
	for i := range pkts {
		pkts[i] = pkt(ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: uint16(30000 + i)}), [6]byte{9})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		p.Received = p.Received.Add(time.Millisecond)
		if r.Handle(p) != drop.None {
			b.Fatal("not relayed")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(s.touched, 1)), "ns/frame")
}
