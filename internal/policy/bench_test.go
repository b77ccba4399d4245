package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// BenchmarkDecide measures the steady state of each path through Decide.
// Every sub-benchmark checks that it took the path it names.
func BenchmarkDecide(b *testing.B) {
	v := testView()

	// relay: 4096 flows from 256 routers in turn, the clock advancing
	// 1.1 ms a message, so every message is relayed (just under the
	// default global rate) and the tables see inserts, updates and rotations.
	relay := func(b *testing.B, mk func(uint16, uint32) *ptb.Message) {
		e := newEngine(b, nil)
		msgs := make([]*ptb.Message, 4096)
		for i := range msgs {
			msgs[i] = mk(uint16(i), 1400)
			if msgs[i].Family == 4 {
				msgs[i].Src = netip.AddrFrom4([4]byte{100, 64, 0, byte(i)})
			} else {
				msgs[i].Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			}
		}
		now := t0
		step := func(i int) drop.Reason {
			now = now.Add(1100 * time.Microsecond)
			return e.Decide(now, msgs[i%len(msgs)], fromRouter, v)
		}
		for i := range 20000 { // reach steady state
			step(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if r := step(i); r != drop.None {
				b.Fatalf("message %d: %v, want relay", i, r)
			}
		}
	}
	b.Run("relay/v4", func(b *testing.B) { relay(b, msg4) })
	b.Run("relay/v6", func(b *testing.B) { relay(b, msg6) })

	// Drops, each the same message over and over at a fixed time.
	drops := []struct {
		name string
		edit func(*ptb.Message, *Origin)
		want drop.Reason
	}{
		{"drop/from_peer", func(m *ptb.Message, _ *Origin) { m.Src = peerA4 }, drop.FromPeer},
		{"drop/l2_broadcast", func(_ *ptb.Message, o *Origin) { o.DstMAC = bcastMAC }, drop.L2Broadcast},
		{"drop/duplicate", nil, drop.Duplicate},
		{"drop/rate_limited_flow", nil, drop.RateLimitedFlow}, // MTU varies: not a duplicate
	}
	for _, d := range drops {
		b.Run(d.name, func(b *testing.B) {
			e := newEngine(b, nil)
			m, o := msg4(40000, 1400), fromRouter
			if d.edit != nil {
				d.edit(m, &o)
			}
			vary := d.want == drop.RateLimitedFlow
			for i := range 100 { // spend the flow's burst, record the duplicate
				if vary {
					m.MTU = 1280 + uint32(i)
				}
				e.Decide(t0, m, o, v)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if vary {
					m.MTU = 2000 + uint32(i%200)
				}
				if r := e.Decide(t0, m, o, v); r != d.want {
					b.Fatalf("got %v, want %v", r, d.want)
				}
			}
		})
	}
}
