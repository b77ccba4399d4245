package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// TestFrameBudgetFlood: under a flood of distinct routers and flows (no
// per-flow or per-router limit binds), the default keeps the frames one
// node emits in one second at or below 50,000 whatever the fan-out, and
// lets through about as many as the budget allows. These are the figures
// docs/policy.md shows for 10, 100, 1,000 and 5,000 nodes.
func TestFrameBudgetFlood(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		nodes    int
		messages int // expected relays in the second, from the arithmetic in docs/policy.md
	}{
		{10, 2000}, // the message cap binds: 1,000 burst + 1,000/s, 18,000 frames
		{100, 505}, // frames: (10,000 + 40,000) / 99
		{1000, 50}, // 50,000 / 999
		{5000, 10}, // 50,000 / 4,999
		{20000, 0}, // 19,999 frames never fit a 10,000 burst
	} {
		e := newEngine(t, nil)
		fanout := c.nodes - 1
		v := viewOf(fanout)
		const n = 200000
		relays := 0
		for i := range n {
			m := msg4(uint16(i), 1400)
			m.Src = netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
			now := t0.Add(time.Duration(i) * time.Second / n) // i/n of a second
			switch r := e.DecideFrames(now, m, fromRouter, v, fanout); r {
			case drop.None:
				relays++
			case drop.RateLimitedFrames, drop.RateLimitedGlobal:
			default:
				t.Fatalf("%d nodes: message %d: %v", c.nodes, i, r)
			}
		}
		frames := relays * fanout
		t.Logf("%5d nodes: %4d messages, %6d frames in one second", c.nodes, relays, frames)
		if frames > int(cfg.GlobalFrameRate)+cfg.GlobalFrameBurst {
			t.Errorf("%d nodes: %d frames in one second, budget %v + %d", c.nodes, frames, cfg.GlobalFrameRate, cfg.GlobalFrameBurst)
		}
		if relays > c.messages || relays < c.messages-2 {
			t.Errorf("%d nodes: %d messages relayed, want about %d", c.nodes, relays, c.messages)
		}
	}
}

// TestFrameBudgetWholeOrNothing: a fan-out that does not fit what is left
// is dropped whole and charges nothing: not the flow, router or message
// buckets, not the frame budget; a smaller one that fits still goes.
func TestFrameBudgetWholeOrNothing(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.DedupWindow = 0
		c.GlobalFrameRate, c.GlobalFrameBurst = 10, 100
		c.FlowBurst, c.FlowRate = 1, 1
	})
	v := viewOf(200)
	want(t, e.DecideFrames(t0, msg4(1, 1400), fromRouter, v, 60), drop.None, "60 of 100")
	want(t, e.DecideFrames(t0, msg4(2, 1400), fromRouter, v, 41), drop.RateLimitedFrames, "41 of the 40 left")
	// Flow 2 was not charged: its bucket (burst 1) still has its token.
	want(t, e.DecideFrames(t0, msg4(2, 1400), fromRouter, v, 40), drop.None, "40 of the 40 left")
	want(t, e.DecideFrames(t0, msg4(3, 1400), fromRouter, v, 1), drop.RateLimitedFrames, "budget spent")
	// 10 frames/s: one second later, exactly 10 more.
	later := t0.Add(time.Second)
	want(t, e.DecideFrames(later, msg4(3, 1400), fromRouter, v, 11), drop.RateLimitedFrames, "11 after 1 s")
	want(t, e.DecideFrames(later, msg4(3, 1400), fromRouter, v, 10), drop.None, "10 after 1 s")
}

func TestFrameBudgetOrder(t *testing.T) {
	t.Run("zero frames is no peers, before anything is charged", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalBurst = 1 })
		want(t, e.DecideFrames(t0, msg4(1, 1400), fromRouter, testView(), 0), drop.NoPeers, "k = 0")
		want(t, e.DecideFrames(t0, msg4(1, 1400), fromRouter, testView(), 1), drop.None, "k = 1")
	})
	t.Run("global messages beat frames", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalBurst, c.GlobalFrameBurst = 1, 1 })
		v := testView()
		want(t, e.DecideFrames(t0, msg4(1, 1400), fromRouter, v, 1), drop.None, "first")
		want(t, e.DecideFrames(t0, msg4(2, 1400), fromRouter, v, 1), drop.RateLimitedGlobal, "both spent")
	})
	t.Run("above the burst never fits", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalFrameBurst = 5 })
		v := viewOf(10)
		want(t, e.DecideFrames(t0.Add(time.Hour), msg4(1, 1400), fromRouter, v, 6), drop.RateLimitedFrames, "6 > burst 5")
		want(t, e.DecideFrames(t0.Add(time.Hour), msg4(1, 1400), fromRouter, viewOf(1<<14), 1<<14), drop.RateLimitedFrames, "many")
		want(t, e.DecideFrames(t0.Add(time.Hour), msg4(1, 1400), fromRouter, v, 5), drop.None, "5 = burst")
	})
	t.Run("never more than the family's peers", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalFrameBurst = 5 })
		want(t, e.DecideFrames(t0, msg4(1, 1400), fromRouter, testView(), 1<<40), drop.None, "2 IPv4 peers")
		want(t, e.DecideFrames(t0, msg4(2, 1400), fromRouter, nil, 1), drop.NoPeers, "nil view")
	})
	t.Run("Decide counts the family's peers", func(t *testing.T) {
		e := newEngine(t, func(c *Config) { c.GlobalFrameBurst = 3 })
		v := testView() // two IPv4 peers, one IPv6
		want(t, e.Decide(t0, msg4(1, 1400), fromRouter, v), drop.None, "2 of 3")
		want(t, e.Decide(t0, msg4(2, 1400), fromRouter, v), drop.RateLimitedFrames, "2 of the 1 left")
		want(t, e.Decide(t0, msg6(2, 1400), fromRouter, v), drop.None, "IPv6: 1 of the 1 left")
	})
}

// viewOf is a view with n IPv4 peers.
func viewOf(n int) *View {
	ps := make([]peers.Peer, n)
	for i := range ps {
		ps[i] = peers.PeerAt(netip.AddrFrom4([4]byte{10, byte(64 + i>>16), byte(i >> 8), byte(i)}))
	}
	return NewView([]netip.Addr{self4, self6}, [][6]byte{selfMAC}, peers.NewSet(ps), nil)
}

func TestValidateFrameBudget(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"zero frame rate":  func(c *Config) { c.GlobalFrameRate = 0 },
		"NaN frame rate":   func(c *Config) { c.GlobalFrameRate = nan() },
		"zero frame burst": func(c *Config) { c.GlobalFrameBurst = 0 },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
