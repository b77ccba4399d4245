package relay

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
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

// scriptedSender fails the peers in fail, reporting them in the order of
// report (nil: the order it was given them), and records who it was given.
type scriptedSender struct {
	name   string
	fail   map[netip.Addr]bool
	order  []netip.Addr
	lastTo []string
	calls  int
}

func (s *scriptedSender) Name() string                      { return s.name }
func (s *scriptedSender) Close() error                      { return nil }
func (s *scriptedSender) SetPeers([]peers.Peer)             {}
func (s *scriptedSender) PeerMACs() [][6]byte               { return nil }
func (s *scriptedSender) PeerStates() []transport.PeerState { return nil }
func (s *scriptedSender) StateChanged() <-chan struct{}     { return nil }
func (s *scriptedSender) SendBatch(ms []transport.Outgoing, onErr func(int, int, error)) int {
	n := 0
	for j := range ms {
		ms[j].Sent = s.Send(ms[j].M, ms[j].To, func(i int, err error) { onErr(j, i, err) })
		n += ms[j].Sent
	}
	return n
}

func (s *scriptedSender) Send(_ *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	s.calls++
	s.lastTo = s.lastTo[:0]
	n := 0
	for i, p := range to {
		s.lastTo = append(s.lastTo, p.Name)
		if !s.fail[p.Addr()] {
			n++
		} else if s.order == nil {
			onErr(i, io.ErrClosedPipe)
		}
	}
	for _, a := range s.order {
		for i, p := range to {
			if p.Has(a) {
				onErr(i, io.ErrClosedPipe)
			}
		}
	}
	return n
}

// dualPeers: node-1..node-n with an IPv4 address each, the odd ones an IPv6 too.
func dualPeers(n int) []peers.Peer {
	var ps []peers.Peer
	for i := 1; i <= n; i++ {
		name := "node-" + strconv.Itoa(i)
		p := peers.Peer{Name: name, V4: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})}
		if i%2 == 1 {
			p.V6 = netip.AddrFrom16([16]byte{0xfd, 0, 14: byte(i >> 8), 15: byte(i)})
		}
		ps = append(ps, p)
	}
	return ps
}

func relayWith(t testing.TB, s *scriptedSender, cfg policy.Config, ps []peers.Peer) (*Relay, *metrics.Metrics) {
	t.Helper()
	eng, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(s.name)
	r := New(Config{Limits: ptb.DefaultLimits(), Engine: eng, Sender: s, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	r.SetView(policy.NewView([]netip.Addr{self}, nil, peers.NewSet(ps), nil))
	return r, m
}

func ptbFor(vipAddr netip.Addr, sport, dport uint16) *capture.Packet {
	rtr := router
	cl := client
	if vipAddr.Is6() {
		rtr, cl = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:2::5")
	}
	return pkt(ptbtest.Build(ptbtest.Spec{Router: rtr, VIP: vipAddr, Client: cl, MTU: 1400, SrcPort: sport, DstPort: dport}), [6]byte{9})
}

// TestSendErrorsByNodeName: each failed peer is counted once under its
// node name, whether the transport reports failures in order or not.
func TestSendErrorsByNodeName(t *testing.T) {
	ps := dualPeers(40)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}) }
	for _, order := range [][]netip.Addr{nil, {addr(30), addr(3), addr(17)}} {
		s := &scriptedSender{name: "fake", fail: map[netip.Addr]bool{addr(3): true, addr(17): true, addr(30): true}, order: order}
		r, m := relayWith(t, s, policy.DefaultConfig(), ps)
		if got := r.Handle(ptbFor(vip, 80, 40000)); got != drop.None {
			t.Fatalf("decision %v", got)
		}
		for _, n := range []string{"node-3", "node-17", "node-30"} {
			if got := m.SendErrors.WithLabelValues(n).Value(); got != 1 {
				t.Errorf("order %v: send_errors_total{peer=%q} = %v, want 1", order, n, got)
			}
		}
		if got := m.SendErrors.Len(); got != 3 {
			t.Errorf("order %v: %d send error series, want 3", order, got)
		}
	}
}

// TestTargetedFanout: a Local Service's flows go to the peers of its
// endpoint nodes in the message's family; anything else to every peer;
// without a table (static --peers) to every peer.
func TestTargetedFanout(t *testing.T) {
	s := &scriptedSender{name: "fake"}
	r, m := relayWith(t, s, policy.DefaultConfig(), dualPeers(40))
	vip6 := netip.MustParseAddr("2001:db8:1::10")
	r.SetFanout(fanout.Build(
		[]fanout.Service{{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{vip, vip6}, Ports: []fanout.Port{{Port: 443, Proto: fanout.TCP}}}},
		[]fanout.Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-7", "node-12", "node-99", "node-0"}}}))
	cases := []struct {
		name string
		p    *capture.Packet
		want []string // nil: every peer of the family
	}{
		{"Local, IPv4: both endpoint nodes", ptbFor(vip, 443, 1), []string{"node-12", "node-7"}},
		{"Local, IPv6: only node-7 has IPv6", ptbFor(vip6, 443, 1), []string{"node-7"}},
		{"another port: every peer", ptbFor(vip, 80, 1), nil},
	}
	for _, c := range cases {
		if got := r.Handle(c.p); got != drop.None {
			t.Fatalf("%s: %v", c.name, got)
		}
		want := c.want
		if want == nil {
			for _, p := range r.View().Peers().Family(4) { // the case is IPv4
				want = append(want, p.Name)
			}
		}
		if !slices.Equal(s.lastTo, want) {
			t.Errorf("%s: sent to %v, want %v", c.name, s.lastTo, want)
		}
	}
	// The histogram saw 2, 1 and 40 peers.
	if h := m.Fanout.Value(); h.Count() != 3 || h.Sum != 43 {
		t.Fatalf("fan-out histogram: %d observations summing to %v, want 3 and 43", h.Count(), h.Sum)
	}
	r.SetFanout(nil)
	r.Handle(ptbFor(vip, 443, 2))
	if len(s.lastTo) != 40 {
		t.Errorf("without a table: sent to %d peers, want all 40", len(s.lastTo))
	}
	// Endpoints only on nodes that are no peer (ourselves): nobody to tell.
	r.SetFanout(fanout.Build(
		[]fanout.Service{{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{vip}, Ports: []fanout.Port{{Port: 443, Proto: fanout.TCP}}}},
		[]fanout.Slice{{Namespace: "web", Service: "front", Nodes: []string{"this-node"}}}))
	if got := r.Handle(ptbFor(vip, 443, 3)); got != drop.NoPeers {
		t.Errorf("only this node owns the flow: %v, want no_peers", got)
	}
	// A targeted relay allocates nothing.
	r.SetFanout(fanout.Build(
		[]fanout.Service{{Namespace: "web", Name: "front", Local: true, Addrs: []netip.Addr{vip}, Ports: []fanout.Port{{Port: 443, Proto: fanout.TCP}}}},
		[]fanout.Slice{{Namespace: "web", Service: "front", Nodes: []string{"node-7", "node-12"}}}))
	p := ptbFor(vip, 443, 9)
	if a := testing.AllocsPerRun(100, func() {
		p.Received = p.Received.Add(time.Second)
		if got := r.Handle(p); got != drop.None {
			t.Fatalf("targeted relay: %v", got)
		}
	}); a != 0 {
		t.Errorf("a targeted relay allocates %v", a)
	}
}

// TestFrameBudgetIsWholeOrNothing: a fan-out that does not fit the frame
// budget is dropped and counted, and the transport is never called.
func TestFrameBudgetIsWholeOrNothing(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.GlobalFrameRate, cfg.GlobalFrameBurst = 1, 50
	s := &scriptedSender{name: "fake"}
	r, m := relayWith(t, s, cfg, dualPeers(40))
	if got := r.Handle(ptbFor(vip, 80, 1)); got != drop.None {
		t.Fatalf("first: %v", got)
	}
	if got := r.Handle(ptbFor(vip, 80, 2)); got != drop.RateLimitedFrames {
		t.Fatalf("40 frames with 10 left: %v, want rate_limited_frames", got)
	}
	if s.calls != 1 || m.Dropped(drop.RateLimitedFrames).Value() != 1 {
		t.Fatalf("transport called %d times, dropped %v", s.calls, m.Dropped(drop.RateLimitedFrames).Value())
	}
	// A broadcast costs one frame whatever the peers.
	b := &scriptedSender{name: "broadcast"}
	r, _ = relayWith(t, b, cfg, dualPeers(40))
	for i := range 50 {
		if got := r.Handle(ptbFor(vip, 80, uint16(i+1))); got != drop.None {
			t.Fatalf("broadcast %d: %v", i, got)
		}
	}
}

// TestFailingFanoutAllocatesNothing: a relay to thousands of failing peers
// allocates nothing once each peer's counter exists.
func TestFailingFanoutAllocatesNothing(t *testing.T) {
	ps := dualPeers(2000)
	fail := map[netip.Addr]bool{}
	for _, p := range ps {
		fail[p.Addr()] = true
	}
	cfg := policy.DefaultConfig()
	cfg.DedupWindow, cfg.FlowRate, cfg.FlowBurst = time.Nanosecond, 1e9, 1e6
	cfg.GlobalFrameRate, cfg.GlobalFrameBurst = 1e12, 1e9
	s := &scriptedSender{name: "fake", fail: fail}
	r, m := relayWith(t, s, cfg, ps)
	p := ptbFor(vip, 80, 1)
	step := func() {
		p.Received = p.Received.Add(time.Millisecond)
		if got := r.Handle(p); got != drop.None {
			t.Fatalf("%v", got)
		}
	}
	step()
	if a := testing.AllocsPerRun(50, step); a != 0 {
		t.Errorf("a relay to 2,000 failing peers allocates %v", a)
	}
	if got := m.SendErrors.WithLabelValues("node-1999").Value(); got != 52 {
		t.Errorf("node-1999 failed %v times, want 52 (AllocsPerRun runs once more)", got)
	}
}
