package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// TestReasons gives each reason a message that only it catches, in both
// families, on a fresh engine.
func TestReasons(t *testing.T) {
	type fam struct {
		name                   string
		msg                    func(uint16, uint32) *ptb.Message
		self, peer, vip, other netip.Addr
		routerNet, vipNet      netip.Prefix
	}
	fams := []fam{
		{"v4", msg4, self4, peerA4, vip4, netip.MustParseAddr("192.0.2.99"),
			netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/28")},
		{"v6", msg6, self6, peerA6, vip6, netip.MustParseAddr("2001:db8:1::99"),
			netip.MustParsePrefix("2001:db8:ff::/48"), netip.MustParsePrefix("2001:db8:1::/120")},
	}
	for _, f := range fams {
		t.Run(f.name, func(t *testing.T) {
			cases := []struct {
				name string
				mod  func(*Config)
				edit func(*ptb.Message, *Origin, **View)
				want drop.Reason
			}{
				{"relay", nil, nil, drop.None},
				{"relay without MAC", nil, func(_ *ptb.Message, o *Origin, _ **View) { *o = Origin{} }, drop.None},
				{"self address", nil, func(m *ptb.Message, _ *Origin, _ **View) { m.Src = f.self }, drop.FromSelf},
				{"peer address", nil, func(m *ptb.Message, _ *Origin, _ **View) { m.Src = f.peer }, drop.FromPeer},
				{"peer MAC", nil, func(_ *ptb.Message, o *Origin, _ **View) { o.SrcMAC = peerMAC }, drop.FromPeer},
				{"self MAC", nil, func(_ *ptb.Message, o *Origin, _ **View) { o.SrcMAC = selfMAC }, drop.FromSelf},
				{"our tunnel device", nil, func(_ *ptb.Message, o *Origin, _ **View) { *o = Origin{Tunnel: true} }, drop.FromPeer},
				{"broadcast", nil, func(_ *ptb.Message, o *Origin, _ **View) { o.DstMAC = bcastMAC }, drop.L2Broadcast},
				{"multicast", nil, func(_ *ptb.Message, o *Origin, _ **View) { o.DstMAC = mcastMAC }, drop.L2Broadcast},
				{"MACs ignored without HasMAC", nil, func(_ *ptb.Message, o *Origin, _ **View) {
					*o = Origin{SrcMAC: peerMAC, DstMAC: bcastMAC}
				}, drop.None},
				{"ignored network", func(c *Config) { c.IgnoreNetworks = []netip.Prefix{f.routerNet} }, nil, drop.IgnoredNetwork},
				{"foreign inner", nil, func(m *ptb.Message, _ *Origin, _ **View) { m.Inner.Src = f.other }, drop.ForeignInner},
				{"relay-for match", func(c *Config) { c.RelayFor = []netip.Prefix{f.vipNet} }, nil, drop.None},
				{"not relay-for", func(c *Config) { c.RelayFor = []netip.Prefix{f.routerNet} }, nil, drop.NotRelayFor},
				{"port listed", func(c *Config) { c.Ports = []uint16{80, 443} }, nil, drop.None},
				{"port not listed", func(c *Config) { c.Ports = []uint16{80, 8443} }, nil, drop.PortNotListed},
				{"no peers at all", nil, func(_ *ptb.Message, _ *Origin, v **View) {
					*v = NewView([]netip.Addr{self4, self6}, nil, nil, nil)
				}, drop.NoPeers},
				{"nil view", nil, func(_ *ptb.Message, _ *Origin, v **View) { *v = nil }, drop.NoPeers},
				{"no peer of this family", nil, func(m *ptb.Message, _ *Origin, v **View) {
					other := peerA6
					if m.Family == 6 {
						other = peerA4
					}
					*v = NewView(nil, nil, peers.NewSet([]peers.Peer{peers.PeerAt(other)}), nil)
				}, drop.NoPeersOfFamily},
				{"peer of the other family, transport carries any", nil, func(m *ptb.Message, _ *Origin, v **View) {
					other := peerA6
					if m.Family == 6 {
						other = peerA4
					}
					*v = NewView(nil, nil, peers.NewSet([]peers.Peer{peers.PeerAt(other)}), nil).CarryAnyFamily(true)
				}, drop.None},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					e := newEngine(t, c.mod)
					m, o, v := f.msg(40000, 1400), fromRouter, testView()
					if c.edit != nil {
						c.edit(m, &o, &v)
					}
					want(t, e.Decide(t0, m, o, v), c.want, c.name)
				})
			}
		})
	}
}

// TestOrder pins the decision order where two reasons apply at once.
func TestOrder(t *testing.T) {
	ignoreAll := func(c *Config) {
		c.IgnoreNetworks = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	cases := []struct {
		name string
		mod  func(*Config)
		edit func(*ptb.Message, *Origin)
		want drop.Reason
	}{
		{"peer address beats ignore networks", ignoreAll,
			func(m *ptb.Message, _ *Origin) { m.Src = peerA4 }, drop.FromPeer},
		{"peer MAC beats ignore networks", ignoreAll,
			func(_ *ptb.Message, o *Origin) { o.SrcMAC = peerMAC }, drop.FromPeer},
		{"broadcast beats ignore networks", ignoreAll,
			func(_ *ptb.Message, o *Origin) { o.DstMAC = bcastMAC }, drop.L2Broadcast},
		{"self address beats peer MAC", nil,
			func(m *ptb.Message, o *Origin) { m.Src, o.SrcMAC = self4, peerMAC }, drop.FromSelf},
		{"peer address beats self MAC", nil,
			func(m *ptb.Message, o *Origin) { m.Src, o.SrcMAC = peerA4, selfMAC }, drop.FromPeer},
		{"self MAC beats broadcast", nil,
			func(_ *ptb.Message, o *Origin) { o.SrcMAC, o.DstMAC = selfMAC, bcastMAC }, drop.FromSelf},
		{"ignore beats foreign inner", ignoreAll,
			func(m *ptb.Message, _ *Origin) { m.Inner.Src = client4 }, drop.IgnoredNetwork},
		{"foreign inner beats relay-for", func(c *Config) { c.RelayFor = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")} },
			func(m *ptb.Message, _ *Origin) { m.Inner.Src = client4 }, drop.ForeignInner},
		{"relay-for beats ports", func(c *Config) {
			c.RelayFor = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}
			c.Ports = []uint16{1}
		}, nil, drop.NotRelayFor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, c.mod)
			m, o := msg4(40000, 1400), fromRouter
			if c.edit != nil {
				c.edit(m, &o)
			}
			want(t, e.Decide(t0, m, o, testView()), c.want, c.name)
		})
	}

	t.Run("ports beat no peers", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.Ports = []uint16{1} })
		want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, nil), drop.PortNotListed, "ports")
	})
	t.Run("no peers beats duplicate and rate limits, and costs nothing", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalBurst = 1 })
		v := testView()
		want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, v), drop.None, "first")
		want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, nil), drop.NoPeers, "duplicate without peers")
		want(t, e.Decide(t0, msg4(40001, 1400), fromRouter, nil), drop.NoPeers, "over global without peers")
	})
	t.Run("duplicate beats rate limit", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.FlowBurst = 1 })
		v := testView()
		want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, v), drop.None, "first")
		want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, v), drop.Duplicate, "same MTU")
		want(t, e.Decide(t0, msg4(40000, 1300), fromRouter, v), drop.RateLimitedFlow, "other MTU")
	})
	t.Run("flow beats source beats global", func(t *testing.T) {
		e := newEngine(t, func(c *Config) {
			c.DedupWindow = 0
			c.FlowBurst, c.SourceBurst, c.GlobalBurst = 1, 2, 3
		})
		v := testView()
		want(t, e.Decide(t0, msg4(1, 1400), fromRouter, v), drop.None, "flow 1")
		want(t, e.Decide(t0, msg4(1, 1400), fromRouter, v), drop.RateLimitedFlow, "flow 1 again")
		want(t, e.Decide(t0, msg4(2, 1400), fromRouter, v), drop.None, "flow 2")
		want(t, e.Decide(t0, msg4(2, 1400), fromRouter, v), drop.RateLimitedFlow, "flow 2 again: flow first")
		want(t, e.Decide(t0, msg4(3, 1400), fromRouter, v), drop.RateLimitedSource, "flow 3: source spent")
		m := msg4(3, 1400)
		m.Src = netip.MustParseAddr("198.51.100.2")
		want(t, e.Decide(t0, m, fromRouter, v), drop.None, "other router")
		m.Inner.DstPort = 4
		want(t, e.Decide(t0, m, fromRouter, v), drop.RateLimitedGlobal, "global spent")
	})
}

// TestNoChargeOnDrop: a message dropped by a later limit costs no tokens in
// the earlier ones (nor the global bucket for a flow-limited message).
func TestNoChargeOnDrop(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.DedupWindow = 0
		c.FlowBurst, c.GlobalBurst = 1, 2
		c.FlowRate, c.GlobalRate = 1, 1
	})
	v := testView()
	want(t, e.Decide(t0, msg4(1, 1400), fromRouter, v), drop.None, "flow 1")
	for i := range 100 {
		want(t, e.Decide(t0, msg4(1, 1400), fromRouter, v), drop.RateLimitedFlow, "flow 1 flood "+itoa(i))
	}
	// The flood charged neither the source nor the global bucket.
	want(t, e.Decide(t0, msg4(2, 1400), fromRouter, v), drop.None, "flow 2")
	want(t, e.Decide(t0, msg4(3, 1400), fromRouter, v), drop.RateLimitedGlobal, "flow 3")
	// Flow 3 was dropped by the global limit: its own bucket is still full.
	want(t, e.Decide(t0.Add(time.Second), msg4(3, 1400), fromRouter, v), drop.None, "flow 3 later")
}

func TestTokenBucketRefill(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.DedupWindow = 0 }) // flow: 10/s, burst 10
	v := testView()
	now := t0
	relay := func(n int) (got int) {
		for range n {
			if e.Decide(now, msg4(40000, 1400), fromRouter, v) == drop.None {
				got++
			}
		}
		return got
	}
	if got := relay(50); got != 10 {
		t.Fatalf("burst: relayed %d of 50, want 10", got)
	}
	now = now.Add(ms(99))
	if got := relay(5); got != 0 {
		t.Fatalf("99 ms later: relayed %d, want 0 (one token takes 100 ms)", got)
	}
	now = now.Add(ms(1))
	if got := relay(5); got != 1 {
		t.Fatalf("100 ms later: relayed %d, want 1", got)
	}
	now = now.Add(ms(450))
	if got := relay(50); got != 4 {
		t.Fatalf("450 ms more: relayed %d, want 4", got)
	}
	now = now.Add(time.Hour)
	if got := relay(50); got != 10 {
		t.Fatalf("after an hour: relayed %d, want the burst of 10 (no more)", got)
	}
}

func TestDedupWindowExpiry(t *testing.T) {
	e := newEngine(t, nil)
	v := testView()
	want(t, e.Decide(t0, msg4(40000, 1400), fromRouter, v), drop.None, "first")
	want(t, e.Decide(t0.Add(ms(99)), msg4(40000, 1400), fromRouter, v), drop.Duplicate, "at 99 ms")
	want(t, e.Decide(t0.Add(ms(99)), msg4(40000, 1280), fromRouter, v), drop.None, "other MTU is news")
	want(t, e.Decide(t0.Add(ms(99)), msg4(40001, 1400), fromRouter, v), drop.None, "other flow is news")
	want(t, e.Decide(t0.Add(ms(100)), msg4(40000, 1400), fromRouter, v), drop.None, "at 100 ms")
	want(t, e.Decide(t0.Add(ms(150)), msg4(40000, 1400), fromRouter, v), drop.Duplicate, "window restarted at 100 ms")
	// A TCP retransmission after the minimum RTO (200 ms) gets through.
	want(t, e.Decide(t0.Add(ms(300)), msg4(40000, 1400), fromRouter, v), drop.None, "after an RTO")
}

// TestDuplicateDoesNotExtendWindow: a stalled flow sends one frag-needed per
// oversized packet; if duplicates refreshed the entry, nothing after the
// first would ever be relayed again.
func TestDuplicateDoesNotExtendWindow(t *testing.T) {
	e := newEngine(t, nil)
	v := testView()
	relays := 0
	for i := 0; i <= 1000; i++ { // one a millisecond for a second
		if e.Decide(t0.Add(ms(i)), msg4(40000, 1400), fromRouter, v) == drop.None {
			relays++
			if i%100 != 0 {
				t.Errorf("relay at %d ms, want only on 100 ms boundaries", i)
			}
		}
	}
	if relays != 11 {
		t.Errorf("relayed %d in 1 s of duplicates every ms, want 11 (one per 100 ms window)", relays)
	}
}

// TestParallelFlows is the measured failure of a per-router limit: 20
// parallel downloads through one router stall at once, and each flow's
// window of oversized packets produces a train of frag-needed. All 20 must
// be relayed; one flow alone is capped by its own bucket.
func TestParallelFlows(t *testing.T) {
	for _, fam := range []struct {
		name string
		msg  func(uint16, uint32) *ptb.Message
	}{{"v4", msg4}, {"v6", msg6}} {
		t.Run(fam.name, func(t *testing.T) {
			e := newEngine(t, nil)
			v := testView()
			relayed := map[uint16]int{}
			// 20 flows x 45 oversized packets (a 64 KiB window of 1448-byte
			// segments), interleaved within 5 ms.
			for i := range 45 * 20 {
				dport := uint16(40000 + i%20)
				now := t0.Add(time.Duration(i) * 5 * time.Millisecond / 900)
				if e.Decide(now, fam.msg(dport, 1400), fromRouter, v) == drop.None {
					relayed[dport]++
				}
			}
			if len(relayed) != 20 {
				t.Errorf("%d of 20 flows relayed, want all", len(relayed))
			}
			// A retransmission after the minimum RTO gets through for every flow.
			for i := range 20 {
				dport := uint16(40000 + i)
				if r := e.Decide(t0.Add(ms(205)), fam.msg(dport, 1400), fromRouter, v); r != drop.None {
					t.Errorf("flow %d retransmission after RTO: %v", dport, r)
				}
			}

			// One flow, MTU varying on every message (so dedup cannot help),
			// 1000 messages over one second: capped at burst + rate x 1 s.
			e = newEngine(t, nil)
			n := 0
			for i := range 1000 {
				if e.Decide(t0.Add(ms(i)), fam.msg(50000, uint32(1280+i)), fromRouter, v) == drop.None {
					n++
				}
			}
			if n > 10+10 || n < 10+9 {
				t.Errorf("single flow relayed %d in 1 s, want about 20 (burst 10 + 10/s)", n)
			}
		})
	}
}

// TestGlobalCapFlood: a second of flood from many spoofed routers and flows,
// every one a fresh key, relays no more than the global budget.
func TestGlobalCapFlood(t *testing.T) {
	cfg := DefaultConfig()
	e := newEngine(t, nil)
	v := testView()
	const n = 200000
	relays := 0
	for i := range n {
		m := msg4(uint16(i), 1400)
		m.Src = netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		now := t0.Add(time.Duration(i) * time.Second / n) // i/n of a second
		if e.Decide(now, m, fromRouter, v) == drop.None {
			relays++
		}
	}
	budget := cfg.GlobalBurst + int(cfg.GlobalRate) // over a span just under 1 s
	if relays > budget || relays < budget-2 {
		t.Errorf("relayed %d over a 1 s flood, want at most and about %d", relays, budget)
	}
	for name, l := range map[string]int{"dedup": e.dedup.len(), "flows": e.flows.len(), "sources": e.sources.len()} {
		if l > relays {
			t.Errorf("%s table holds %d keys, more than the %d relays that may create them", name, l, relays)
		}
	}
}

// TestMaxTracked: with a global cap high enough that every distinct key is
// relayed, the tables still never exceed MaxTracked, and a new key is still
// decided (fail open per key) while the table is full of live keys.
func TestMaxTracked(t *testing.T) {
	const maxTracked = 64
	e := newEngine(t, func(c *Config) {
		c.MaxTracked = maxTracked
		c.GlobalRate, c.GlobalBurst = 1e6, 1e6
		c.GlobalFrameRate, c.GlobalFrameBurst = 1e7, 1e7
		c.SourceRate, c.SourceBurst = 1e6, 1e6
	})
	v := testView()
	for i := range 20000 {
		m := msg4(uint16(i), 1400)
		m.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		if r := e.Decide(t0.Add(time.Duration(i)*time.Microsecond), m, fromRouter, v); r != drop.None {
			t.Fatalf("message %d: %v, want relay (keys are fresh and limits generous)", i, r)
		}
		for name, l := range map[string]int{"dedup": e.dedup.len(), "flows": e.flows.len(), "sources": e.sources.len()} {
			if l > maxTracked {
				t.Fatalf("after %d messages the %s table holds %d keys, over %d", i+1, name, l, maxTracked)
			}
		}
	}
	// The newest keys are still tracked: an immediate repeat is a duplicate.
	m := msg4(uint16(19999), 1400)
	m.Src = netip.AddrFrom4([4]byte{100, 64, byte(19999 >> 8), byte(19999 & 0xff)})
	want(t, e.Decide(t0.Add(20*time.Millisecond), m, fromRouter, v), drop.Duplicate, "newest key")
}

// TestEvictionOnlyStaleByDefault: with every relay a new key at a high
// rate, the tables are rotated by age, not size, so no live state is
// forgotten: a busy flow's decisions are the same with and without the
// flood of other keys. With a small MaxTracked they are not (the check can fail).
func TestEvictionOnlyStaleByDefault(t *testing.T) {
	run := func(maxTracked int, flood bool) (out []drop.Reason, e *Engine) {
		e = newEngine(t, func(c *Config) {
			c.GlobalRate, c.GlobalBurst = 2000, 2000 // not binding: the flood is 1000/s
			c.MaxTracked = maxTracked
		})
		v := testView()
		for i := range 20000 { // 20 s, one step a millisecond
			now := t0.Add(time.Duration(i) * time.Millisecond)
			if flood {
				m := msg4(uint16(i), 1400)
				m.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
				if r := e.Decide(now, m, fromRouter, v); r != drop.None {
					t.Fatalf("flood message %d: %v", i, r)
				}
			}
			// Flow 1: a message every 5 ms, MTU cycling so that both the
			// duplicate table and the flow bucket matter.
			if i%5 == 0 {
				out = append(out, e.Decide(now, msg4(1, uint32(1400-i%15)), fromRouter, v))
			}
		}
		return out, e
	}
	quiet, _ := run(65536, false)
	busy, e := run(65536, true)
	if !slices.Equal(quiet, busy) {
		t.Error("default MaxTracked: a flood of other keys changed flow 1's decisions")
	}
	for name, l := range map[string]int{"dedup": e.dedup.len(), "flows": e.flows.len(), "sources": e.sources.len()} {
		if l > 2*4000 {
			t.Errorf("%s table holds %d keys: age rotation is not bounding it", name, l)
		}
	}
	if small, _ := run(64, true); slices.Equal(quiet, small) {
		t.Error("MaxTracked 64: expected the flood to evict flow 1's live state")
	}
}

// TestMapped: IPv4-mapped IPv6 addresses (from a dual-stack socket or a
// careless caller) are the IPv4 addresses they map.
func TestMapped(t *testing.T) {
	mapped := func(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }
	v := NewView([]netip.Addr{mapped(self4)}, nil,
		peers.NewSet([]peers.Peer{peers.PeerAt(mapped(peerA4))}), nil)

	e := newEngine(t, nil)
	m := msg4(1, 1400)
	m.Src = mapped(self4)
	want(t, e.Decide(t0, m, Origin{}, v), drop.FromSelf, "mapped self")
	m.Src = self4
	want(t, e.Decide(t0, m, Origin{}, v), drop.FromSelf, "self given mapped")
	m.Src = mapped(peerA4)
	want(t, e.Decide(t0, m, Origin{}, v), drop.FromPeer, "mapped peer")

	e = newEngine(t, func(c *Config) {
		c.IgnoreNetworks = []netip.Prefix{netip.MustParsePrefix("::ffff:198.51.100.0/120")}
	})
	want(t, e.Decide(t0, msg4(1, 1400), Origin{}, v), drop.IgnoredNetwork, "mapped ignore prefix")

	e = newEngine(t, func(c *Config) { c.RelayFor = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} })
	m = msg4(1, 1400)
	m.Src, m.Dst, m.Inner.Src, m.Inner.Dst = mapped(router4), vip4, mapped(vip4), mapped(client4)
	want(t, e.Decide(t0, m, Origin{}, v), drop.None, "mapped inner source is the VIP, inside relay-for")
	m2 := msg4(1, 1400) // the same message, unmapped
	want(t, e.Decide(t0, m2, Origin{}, v), drop.Duplicate, "mapped and unmapped are one key")

	// Zones do not hide a peer either.
	v6 := NewView(nil, nil, peers.NewSet([]peers.Peer{peers.PeerAt(netip.MustParseAddr("fe80::2"))}), nil)
	m = msg6(1, 1400)
	m.Src = netip.MustParseAddr("fe80::2%eth0")
	want(t, newEngine(t, nil).Decide(t0, m, Origin{}, v6), drop.FromPeer, "zoned peer")
}

// TestViewIgnoresBogusMACs: an unresolved neighbour (all-zero MAC) in the
// peer MAC list must not turn frames with a zero source MAC into FromPeer.
func TestViewIgnoresBogusMACs(t *testing.T) {
	v := NewView(nil, nil, peers.NewSet([]peers.Peer{peers.PeerAt(peerA4)}), [][6]byte{{}, bcastMAC, peerMAC})
	e := newEngine(t, nil)
	want(t, e.Decide(t0, msg4(1, 1400), Origin{HasMAC: true, DstMAC: selfMAC}, v), drop.None, "zero source MAC")
	want(t, e.Decide(t0, msg4(2, 1400), Origin{HasMAC: true, SrcMAC: peerMAC, DstMAC: selfMAC}, v), drop.FromPeer, "peer MAC")
	if v.Peers().Len() != 1 || NewView(nil, nil, nil, nil).Peers() == nil {
		t.Error("Peers: want the set given, and an empty set for nil")
	}
}

// TestTimeGoesBackwards: a clock that steps back never opens the buckets.
func TestTimeGoesBackwards(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.DedupWindow = 0; c.GlobalBurst, c.GlobalRate = 5, 1 })
	v := testView()
	relays := 0
	for i := range 1000 {
		m := msg4(uint16(i), 1400)
		m.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		now := t0.Add(-time.Duration(i) * time.Hour) // ever earlier
		if e.Decide(now, m, fromRouter, v) == drop.None {
			relays++
		}
	}
	if relays > 5 {
		t.Errorf("relayed %d with the clock running backwards, want at most the burst of 5", relays)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	bad := map[string]func(*Config){
		"invalid ignore":  func(c *Config) { c.IgnoreNetworks = []netip.Prefix{{}} },
		"invalid relay":   func(c *Config) { c.RelayFor = []netip.Prefix{{}} },
		"negative window": func(c *Config) { c.DedupWindow = -1 },
		"zero flow rate":  func(c *Config) { c.FlowRate = 0 },
		"NaN source rate": func(c *Config) { c.SourceRate = nan() },
		"inf global rate": func(c *Config) { c.GlobalRate = inf() },
		"zero burst":      func(c *Config) { c.GlobalBurst = 0 },
		"endless refill":  func(c *Config) { c.FlowRate, c.FlowBurst = 1e-12, 10 },
		"max tracked 1":   func(c *Config) { c.MaxTracked = 1 },
	}
	for name, mod := range bad {
		cfg := DefaultConfig()
		mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "policy: ") {
			t.Errorf("%s: Validate = %v, want a policy error", name, err)
		}
		if _, err2 := New(cfg); err2 == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	cfg := DefaultConfig()
	cfg.DedupWindow = 0
	if err := cfg.Validate(); err != nil {
		t.Errorf("zero window (dedup off): %v", err)
	}
}

// TestSteadyStateAllocs: Decide allocates nothing, across table rotations.
func TestSteadyStateAllocs(t *testing.T) {
	e := newEngine(t, nil)
	v := testView()
	now := t0
	i := 0
	step := func() {
		i++
		now = now.Add(1100 * time.Microsecond)
		m := msg4(uint16(i%4096), 1400)
		m.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		if r := e.Decide(now, m, fromRouter, v); r != drop.None {
			t.Fatalf("step %d: %v, want relay", i, r)
		}
		e.Decide(now, m, fromRouter, v) // duplicate
	}
	for range 10000 { // warm up: let every map reach its steady size
		step()
	}
	if a := testing.AllocsPerRun(20000, step); a != 0 {
		t.Errorf("Decide allocates %v per message in steady state, want 0", a)
	}
}

// TestFlowKeyFields: every field of the flow key tells flows apart (the
// tables hold hashes of the keys, so a field left out of the hash would
// merge flows): a flow whose burst is spent does not limit one that
// differs from it in a single field.
func TestFlowKeyFields(t *testing.T) {
	v := testView()
	for name, edit := range map[string]func(*ptb.Message){
		"proto":    func(m *ptb.Message) { m.Inner.Proto = 17 },
		"dst port": func(m *ptb.Message) { m.Inner.DstPort++ },
		"dst":      func(m *ptb.Message) { m.Inner.Dst = netip.MustParseAddr("192.0.2.99") },
		"router":   func(m *ptb.Message) { m.Src = netip.MustParseAddr("100.64.9.9") },
	} {
		e := newEngine(t, nil)
		for i := range 50 { // spend the flow's burst; MTU varies so dedup cannot help
			e.Decide(t0, msg4(40000, 1280+uint32(i)), fromRouter, v)
		}
		if r := e.Decide(t0, msg4(40000, 1400), fromRouter, v); r != drop.RateLimitedFlow {
			t.Fatalf("%s: the spent flow: %v, want rate_limited_flow", name, r)
		}
		m := msg4(40000, 1400)
		edit(m)
		if r := e.Decide(t0, m, fromRouter, v); r != drop.None {
			t.Errorf("a flow differing in %s: %v, want relay", name, r)
		}
	}
}
