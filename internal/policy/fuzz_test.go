package policy

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// FuzzDecide drives one engine with a stream of arbitrary messages, origins
// and times (which may jump either way) and checks what must always hold:
// no panic; only policy reasons; nothing relayed from ourselves, a peer, or
// an L2 broadcast; no table above MaxTracked; and no more relays than the
// global bucket allows for the span of time seen, nor more frames than the
// frame budget allows (DecideFrames, with fan-outs of 0 to 15 frames).
func FuzzDecide(f *testing.F) {
	f.Add(uint16(1000), uint16(1000), uint16(64), []byte{})
	f.Add(uint16(1), uint16(1), uint16(2), []byte("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(uint16(3), uint16(5), uint16(8), []byte("\x80\x07\x03\x01\x00\x50\x9c\x40\x05\x00\x06\x04"+
		"\x7f\x07\x03\x01\x00\x50\x9c\x40\x05\x00\x06\x04\x00\x07\x03\x02\x00\x50\x9c\x41\x05\x00\x06\x04"))
	f.Add(uint16(50), uint16(2), uint16(4), []byte("\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0"))
	// A train of valid, distinct messages (router4 -> vip4 about client4,
	// one destination port each), 1 ms apart: it saturates the global bucket.
	var train []byte
	for i := range 200 {
		train = append(train, 1, 0, 2, 4, 0x01, 0xbb, byte(i>>8), byte(i), 4, 0, 6, 0)
	}
	f.Add(uint16(9), uint16(3), uint16(300), train)

	// Address pools: small, so keys and loop-guard hits repeat.
	addrs := []netip.Addr{
		router4, router6, vip4, vip6, client4, client6, self4, self6, peerA4, peerB4, peerA6,
		netip.AddrFrom16(router4.As16()), netip.AddrFrom16(peerA4.As16()), // mapped
		netip.MustParseAddr("fe80::2%eth0"), netip.MustParseAddr("198.51.100.77"), {},
	}
	macs := [][6]byte{routerMC, selfMAC, peerMAC, bcastMAC, mcastMAC, {}, {0x02, 0, 0, 0, 0, 0x99}, {0x01}}
	mtus := []uint32{0, 68, 576, 1280, 1400, 1480, 1500, 9000, 1<<32 - 1}

	f.Fuzz(func(t *testing.T, rate, burst, maxTracked uint16, data []byte) {
		cfg := DefaultConfig()
		// Global bucket small enough that a short input can exhaust it.
		cfg.GlobalRate, cfg.GlobalBurst = float64(rate%2000+1), int(burst%64+1)
		cfg.FlowBurst, cfg.SourceBurst = int(burst%7+1), int(burst%97+1)
		cfg.MaxTracked = int(maxTracked%512 + 2)
		cfg.GlobalFrameRate, cfg.GlobalFrameBurst = float64(rate%5000+1), int(maxTracked%100+1)
		cfg.IgnoreNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.64/26")}
		if rate&1 != 0 {
			cfg.Ports = []uint16{443, 80}
		}
		if rate&2 != 0 {
			cfg.DedupWindow = 0
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v := testView()

		now := t0
		var lo, hi time.Time // span of the times Decide saw
		relays, frames := 0, 0
		for len(data) >= 12 {
			b := data[:12]
			data = data[12:]
			// b[0]: time step in ms, signed; 0x80 jumps by b[4:8] seconds instead.
			if b[0] == 0x80 {
				now = now.Add(time.Duration(int32(binary.BigEndian.Uint32(b[4:8]))) * time.Second)
			} else {
				now = now.Add(time.Duration(int8(b[0])) * time.Millisecond)
			}
			if lo.IsZero() {
				lo, hi = now, now
			}
			lo, hi = minTime(lo, now), maxTime(hi, now)

			pick := func(i byte) netip.Addr { return addrs[int(i)%len(addrs)] }
			m := &ptb.Message{
				Family: []uint8{4, 6, 0, 5}[b[11]%4],
				Src:    pick(b[1]),
				Dst:    pick(b[2]),
				MTU:    mtus[int(b[8])%len(mtus)],
				Inner: ptb.Flow{
					Src:     pick(b[2]),
					Dst:     pick(b[3]),
					Proto:   b[10],
					SrcPort: binary.BigEndian.Uint16(b[4:6]),
					DstPort: binary.BigEndian.Uint16(b[6:8]),
				},
			}
			if b[3]&0x80 != 0 { // a foreign quoted source now and then
				m.Inner.Src = pick(b[3] >> 4)
			}
			o := Origin{SrcMAC: macs[int(b[9])%len(macs)], DstMAC: macs[int(b[9]>>4)%len(macs)], HasMAC: b[11]&4 != 0, Tunnel: b[11]&16 != 0}
			view := v
			if b[11]&8 != 0 {
				view = nil
			}

			k := int(b[8] >> 4)
			r := e.DecideFrames(now, m, o, view, k)
			if r != drop.None && (r.Malformed() || r.String() == "unknown") {
				t.Fatalf("Decide returned non-policy reason %v", r)
			}
			if r == drop.None {
				relays++
				frames += min(k, len(v.Peers().Family(familyOf(m))))
				if k == 0 {
					t.Fatal("relayed a message with a fan-out of 0")
				}
				src := norm(m.Src)
				loop := o.Tunnel || v.isSelf(src) || v.isPeer(src) ||
					o.HasMAC && (v.isPeerMAC(o.SrcMAC) || v.isSelfMAC(o.SrcMAC) || o.DstMAC[0]&1 != 0)
				if loop || view == nil {
					t.Fatalf("relayed a message that must loop-guard or has no peers: %+v %+v", m, o)
				}
				if norm(m.Inner.Src) != norm(m.Dst) {
					t.Fatalf("relayed a foreign-inner message: %+v", m)
				}
			}
			for _, l := range []int{e.dedup.len(), e.flows.len(), e.sources.len()} {
				if l > cfg.MaxTracked {
					t.Fatalf("table holds %d keys, over MaxTracked %d", l, cfg.MaxTracked)
				}
			}
		}
		// GCRA bound: relays <= burst + span x rate, whatever order times came in.
		budget := float64(cfg.GlobalBurst) + hi.Sub(lo).Seconds()*cfg.GlobalRate
		if float64(relays) > budget+1e-6 {
			t.Fatalf("relayed %d over %v, global budget %.3f", relays, hi.Sub(lo), budget)
		}
		fbudget := float64(cfg.GlobalFrameBurst) + hi.Sub(lo).Seconds()*cfg.GlobalFrameRate
		if float64(frames) > fbudget+1e-6 {
			t.Fatalf("sent %d frames over %v, frame budget %.3f", frames, hi.Sub(lo), fbudget)
		}
	})
}

// familyOf is the family Decide counts peers of.
func familyOf(m *ptb.Message) uint8 {
	if m.Family == 4 || m.Family == 6 {
		return m.Family
	}
	if norm(m.Dst).Is4() {
		return 4
	}
	return 6
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
