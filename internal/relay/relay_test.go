package relay

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// fakeSender records what the relay asked it to send.
type fakeSender struct {
	sent    int
	batches []int // messages per SendBatch call, the first 16 (benchmarks call it millions of times)
	lastTo  []peers.Peer
	lastMsg ptb.Message
	fail    netip.Addr
}

func (f *fakeSender) Name() string                      { return "fake" }
func (f *fakeSender) Close() error                      { return nil }
func (f *fakeSender) SetPeers([]peers.Peer)             {}
func (f *fakeSender) PeerMACs() [][6]byte               { return nil }
func (f *fakeSender) PeerStates() []transport.PeerState { return nil }
func (f *fakeSender) StateChanged() <-chan struct{}     { return nil }
func (f *fakeSender) SendBatch(ms []transport.Outgoing, onErr func(int, int, error)) int {
	if len(f.batches) < 16 {
		f.batches = append(f.batches, len(ms))
	}
	n := 0
	for j := range ms {
		ms[j].Sent = f.Send(ms[j].M, ms[j].To, func(i int, err error) { onErr(j, i, err) })
		n += ms[j].Sent
	}
	return n
}

func (f *fakeSender) Send(m *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	f.sent++
	f.lastTo, f.lastMsg = to, *m
	n := 0
	for i, p := range to {
		if p.Has(f.fail) {
			onErr(i, io.ErrClosedPipe)
			continue
		}
		n++
	}
	return n
}

var (
	router = netip.MustParseAddr("192.0.2.1")
	vip    = netip.MustParseAddr("198.51.100.10")
	client = netip.MustParseAddr("203.0.113.5")
	self   = netip.MustParseAddr("10.0.0.1")
	peerA  = netip.MustParseAddr("10.0.0.2")
	peerB  = netip.MustParseAddr("10.0.0.3")
)

func newRelay(t testing.TB, sender *fakeSender, dry bool) (*Relay, *metrics.Metrics, *[]netip.Addr) {
	t.Helper()
	eng, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("fake")
	var failed []netip.Addr
	r := New(Config{Limits: ptb.DefaultLimits(), Engine: eng, Sender: sender, Metrics: m, DryRun: dry,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SendError: func(p peers.Peer, _ error) { failed = append(failed, p.Addr()) }})
	set := peers.NewSet([]peers.Peer{peers.PeerAt(peerA), peers.PeerAt(peerB), peers.PeerAt(netip.MustParseAddr("fd00::2"))})
	r.SetView(policy.NewView([]netip.Addr{self, vip}, [][6]byte{{2, 0, 0, 0, 0, 1}}, set, [][6]byte{{2, 0, 0, 0, 0, 2}}))
	return r, m, &failed
}

func pkt(b []byte, src [6]byte) *capture.Packet {
	return &capture.Packet{Payload: b, SrcMAC: src, DstMAC: [6]byte{2, 0, 0, 0, 0, 1}, HasMAC: true, Received: time.Now()}
}

func TestGoodPTBIsRelayedToPeersOfItsFamily(t *testing.T) {
	s := &fakeSender{fail: peerB}
	r, m, failed := newRelay(t, s, false)
	b := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40000})
	if got := r.Handle(pkt(b, [6]byte{2, 0, 0, 0, 0, 9})); got != drop.None {
		t.Fatalf("decision = %v", got)
	}
	if s.sent != 1 || len(s.lastTo) != 2 || s.lastMsg.MTU != 1400 || s.lastMsg.Inner.DstPort != 40000 {
		t.Fatalf("sent=%d to=%v msg=%+v", s.sent, s.lastTo, s.lastMsg)
	}
	if m.Relayed4.Value() != 1 || m.FramesSent.Value() != 1 {
		t.Fatalf("relayed=%v frames=%v", m.Relayed4.Value(), m.FramesSent.Value())
	}
	if len(*failed) != 1 || (*failed)[0] != peerB {
		t.Fatalf("send errors reported for %v, want [%v]", *failed, peerB)
	}
}

// TestQueueHoldsUntilFlush: messages queued from one capture receive go
// to the sender together at Flush, each with its own recipients; a failure
// is reported for the right peer, and drops in between take no place.
func TestQueueHoldsUntilFlush(t *testing.T) {
	s := &fakeSender{fail: peerB}
	r, m, failed := newRelay(t, s, false)
	var ps []*capture.Packet
	for port := range uint16(3) {
		ps = append(ps, pkt(ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 41000 + port}), [6]byte{9}))
	}
	garbage := pkt([]byte{0x45, 1, 2}, [6]byte{9})
	for i, p := range []*capture.Packet{ps[0], garbage, ps[1], ps[2]} {
		want := drop.None
		if p == garbage {
			want = drop.Truncated
		}
		if got := r.Queue(p); got != want {
			t.Fatalf("packet %d: %v, want %v", i, got, want)
		}
	}
	if len(s.batches) != 0 || m.Relayed4.Value() != 3 {
		t.Fatalf("before Flush: %d batches sent, relayed %v", len(s.batches), m.Relayed4.Value())
	}
	r.Flush()
	r.Flush() // nothing left: no empty batch
	if len(s.batches) != 1 || s.batches[0] != 3 || s.sent != 3 {
		t.Fatalf("batches %v, %d messages sent: want one batch of 3", s.batches, s.sent)
	}
	if s.lastMsg.Inner.DstPort != 41002 || len(s.lastTo) != 2 {
		t.Fatalf("last message %+v to %v", s.lastMsg.Inner, s.lastTo)
	}
	if got := m.FramesSent.Value(); got != 3 {
		t.Fatalf("frames sent %v, want 3 (peer B failed each time)", got)
	}
	if len(*failed) != 3 || (*failed)[0] != peerB || (*failed)[2] != peerB {
		t.Fatalf("send errors reported for %v, want peer B three times", *failed)
	}
	if got := m.RelayLatency.Value().Count(); got != 3 {
		t.Fatalf("latency histogram: %d observations, want one per message (3)", got)
	}
}

// TestQueueFlushesWhenFull: past maxPending held messages Queue sends them
// itself, so a long receive never overflows its buffers.
func TestQueueFlushesWhenFull(t *testing.T) {
	s := &fakeSender{}
	r, _, _ := newRelay(t, s, false)
	for i := range maxPending + 1 {
		p := pkt(ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: uint16(42000 + i)}), [6]byte{9})
		if got := r.Queue(p); got != drop.None {
			t.Fatalf("packet %d: %v", i, got)
		}
	}
	r.Flush()
	if len(s.batches) != 2 || s.batches[0] != maxPending || s.batches[1] != 1 {
		t.Fatalf("batches %v, want [%d 1]", s.batches, maxPending)
	}
}

func TestDropsAreCountedByReasonAndNeverSent(t *testing.T) {
	s := &fakeSender{}
	r, m, _ := newRelay(t, s, false)
	good := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40001})
	fromPeer := ptbtest.Build(ptbtest.Spec{Router: peerA, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40002})
	cases := []struct {
		name string
		p    *capture.Packet
		want drop.Reason
	}{
		{"garbage", pkt([]byte{0x45, 1, 2}, [6]byte{9}), drop.Truncated},
		{"relayed copy by peer MAC", pkt(good, [6]byte{2, 0, 0, 0, 0, 2}), drop.FromPeer},
		{"routed copy from a peer address", pkt(fromPeer, [6]byte{9}), drop.FromPeer},
		{"broadcast copy", &capture.Packet{Payload: good, SrcMAC: [6]byte{9}, DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, HasMAC: true, Received: time.Now()}, drop.L2Broadcast},
	}
	for _, tc := range cases {
		if got := r.Handle(tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if got := m.Dropped(tc.want).Value(); got < 1 {
			t.Errorf("%s: dropped{%s} = %v", tc.name, tc.want, got)
		}
	}
	if s.sent != 0 {
		t.Fatalf("a dropped packet was sent %d times", s.sent)
	}
	// The same good message twice in a row: the second is a duplicate.
	r.Handle(pkt(good, [6]byte{9}))
	if got := r.Handle(pkt(good, [6]byte{9})); got != drop.Duplicate {
		t.Fatalf("second identical PTB: %v, want duplicate", got)
	}
}

func TestDryRunDecidesButSendsNothing(t *testing.T) {
	s := &fakeSender{}
	r, m, _ := newRelay(t, s, true)
	b := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40000})
	if got := r.Handle(pkt(b, [6]byte{9})); got != drop.None {
		t.Fatalf("decision = %v", got)
	}
	if s.sent != 0 || m.Relayed4.Value() != 1 {
		t.Fatalf("dry run: sent=%d relayed=%v", s.sent, m.Relayed4.Value())
	}
}

// BenchmarkHandle is the whole hot path in userspace: parse + decide +
// metrics + (fake) send. Distinct flows, so every packet is relayed.
func BenchmarkHandle(b *testing.B) {
	for _, fam := range []struct {
		name                string
		router, vip, client netip.Addr
	}{
		{"v4", router, vip, client},
		{"v6", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::5")},
	} {
		b.Run(fam.name, func(b *testing.B) {
			s := &fakeSender{}
			r, _, _ := newRelay(b, s, false)
			eng, err := policy.New(policy.Config{DedupWindow: time.Nanosecond, FlowRate: 1e9, FlowBurst: 1e6, SourceRate: 1e9, SourceBurst: 1e6, GlobalRate: 1e9, GlobalBurst: 1e6, GlobalFrameRate: 1e12, GlobalFrameBurst: 1e9, MaxTracked: 1 << 16})
			if err != nil {
				b.Fatal(err)
			}
			r.engine = eng
			set := peers.NewSet([]peers.Peer{peers.PeerAt(peerA), peers.PeerAt(peerB), peers.PeerAt(netip.MustParseAddr("fd00::2")), peers.PeerAt(netip.MustParseAddr("fd00::3"))})
			r.SetView(policy.NewView([]netip.Addr{self}, nil, set, nil))
			pkts := make([]*capture.Packet, 256)
			for i := range pkts {
				pkts[i] = pkt(ptbtest.Build(ptbtest.Spec{Router: fam.router, VIP: fam.vip, Client: fam.client, MTU: 1400, SrcPort: 80, DstPort: uint16(30000 + i)}), [6]byte{9})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := pkts[i%len(pkts)]
				p.Received = p.Received.Add(time.Millisecond) // past the dedup window
				if r.Handle(p) != drop.None {
					b.Fatal("not relayed")
				}
			}
		})
	}
}

// BenchmarkParseAndDecide is the pure hot path the core issue sets a target
// for (< 1 µs, 0 allocs): ptb.Parse + policy.Decide on real packet bytes.
func BenchmarkParseAndDecide(b *testing.B) {
	for _, fam := range []struct {
		name                string
		router, vip, client netip.Addr
	}{
		{"v4", router, vip, client},
		{"v6", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::5")},
	} {
		b.Run(fam.name, func(b *testing.B) {
			eng, err := policy.New(policy.DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			set := peers.NewSet([]peers.Peer{peers.PeerAt(peerA), peers.PeerAt(peerB), peers.PeerAt(netip.MustParseAddr("fd00::2")), peers.PeerAt(netip.MustParseAddr("fd00::3"))})
			view := policy.NewView([]netip.Addr{self}, nil, set, nil)
			pkts := make([][]byte, 4096)
			for i := range pkts {
				pkts[i] = ptbtest.Build(ptbtest.Spec{Router: fam.router, VIP: fam.vip, Client: fam.client, MTU: 1400, SrcPort: 80, DstPort: uint16(20000 + i)})
			}
			lim := ptb.DefaultLimits()
			var m ptb.Message
			now := time.Now()
			relayed := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(50 * time.Microsecond) // 20k msgs/s: the default limits let some through, drop the rest
				if ptb.Parse(pkts[i%len(pkts)], lim, &m) != drop.None {
					b.Fatal("parse failed")
				}
				if eng.Decide(now, &m, policy.Origin{}, view) == drop.None {
					relayed++
				}
			}
			b.ReportMetric(float64(relayed)/float64(b.N), "relayed/op")
		})
	}
}

// TestTunnelCopyIsNotRelayed: a packet captured on the tunnel's TUN device
// is a copy a peer sent us; whatever rule logged it, it is dropped as
// from_peer, and the same packet on another interface is relayed.
func TestTunnelCopyIsNotRelayed(t *testing.T) {
	s := &fakeSender{}
	r, m, _ := newRelay(t, s, false)
	r.SetTunnelIfIndex(7)
	b := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40001})
	copyIn := &capture.Packet{Payload: b, IfIndex: 7, Received: time.Now()}
	if got := r.Handle(copyIn); got != drop.FromPeer {
		t.Fatalf("copy on the TUN device: %v, want from_peer", got)
	}
	if s.sent != 0 || m.Dropped(drop.FromPeer).Value() != 1 {
		t.Fatalf("sent %d, from_peer %v", s.sent, m.Dropped(drop.FromPeer).Value())
	}
	if got := r.Handle(&capture.Packet{Payload: b, IfIndex: 2, Received: time.Now()}); got != drop.None {
		t.Fatalf("the same packet on the uplink: %v, want relayed", got)
	}
	r.SetTunnelIfIndex(0)
	b2 := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: 1400, SrcPort: 80, DstPort: 40002})
	if got := r.Handle(&capture.Packet{Payload: b2, Received: time.Now()}); got != drop.None {
		t.Fatalf("no tunnel device, interface index 0: %v, want relayed", got)
	}
}
