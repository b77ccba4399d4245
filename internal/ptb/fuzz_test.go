package ptb_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// fuzzSeeds are well-formed and near-miss packets: every table case, each
// base packet cut at every length, bogus lengths and fragments.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, tc := range append(append([]parseCase{}, cases4...), cases6...) {
		seeds = append(seeds, tc.pkt())
	}
	bases := [][]byte{
		ptbtest.Build(spec4(6)),
		ptbtest.Build(spec6(17)),
		fix6(ext6(ptbtest.Build(spec6(6)), 0, pad8()...), 48),
		innerExt6(ptbtest.Build(spec6(6)), 44, 0, 0, 0, 1, 0, 0, 0, 42),
	}
	for _, b := range bases {
		for n := range len(b) {
			seeds = append(seeds, b[:n])
		}
	}
	for _, total := range []int{0, 19, 20, 27, 28, 47, 48, 87, 0xffff} {
		b := ptbtest.Build(spec4(6))
		binary.BigEndian.PutUint16(b[2:], uint16(total))
		seeds = append(seeds, fixHdr4(b))
	}
	for _, payload := range []int{0, 7, 8, 47, 48, 0xffff} {
		b := ptbtest.Build(spec6(6))
		binary.BigEndian.PutUint16(b[4:], uint16(payload))
		seeds = append(seeds, b)
	}
	// Quoted lengths around the header and the MTU (1400).
	for _, total := range []int{0, 19, 20, 1399, 1400, 1401, 0xffff} {
		b := ptbtest.Build(spec4(6))
		binary.BigEndian.PutUint16(b[28+2:], uint16(total))
		seeds = append(seeds, fix4(b))
	}
	for _, payload := range []int{0, 1359, 1360, 1361, 0xffff} {
		b := ptbtest.Build(spec6(6))
		binary.BigEndian.PutUint16(b[48+4:], uint16(payload))
		seeds = append(seeds, fix6(b, 40))
	}
	mf := ptbtest.Build(spec4(6))
	mf[6] |= 0x20
	off := ptbtest.Build(spec4(6))
	off[7] = 1
	seeds = append(seeds, fixHdr4(mf), fixHdr4(off),
		fix6(ext6(ptbtest.Build(spec6(6)), 44, 0, 0, 0, 1, 0, 0, 0, 7), 48))
	return seeds
}

// FuzzParse: no input panics, every verdict is a parse reason, and an
// accepted packet satisfies checkInvariants under the limits it was given.
// With fix set the checksums are made right first, so that mutations reach
// past them into the ICMP and quoted-packet checks.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, false, false)
		f.Add(s, false, true)
	}
	f.Add(ptbtest.Build(spec4(6)), true, false)
	f.Fuzz(func(t *testing.T, pkt []byte, strict, fix bool) {
		if fix {
			fixChecksums(pkt)
		}
		lim := ptb.DefaultLimits()
		if strict {
			lim = ptb.StrictLimits()
		}
		var m ptb.Message
		r := ptb.Parse(pkt, lim, &m)
		if r != drop.None {
			if !r.Malformed() {
				t.Fatalf("Parse = %v, not a parse reason", r)
			}
			return
		}
		checkInvariants(t, pkt, lim, &m)
	})
}

// FuzzBuildParse: whatever ptbtest builds, Parse decodes back to the spec,
// refusing it only for the reasons the spec explains.
func FuzzBuildParse(f *testing.F) {
	f.Add(false, uint32(1400), uint8(6), uint16(443), uint16(51000), uint8(64), uint8(1), uint16(0))
	f.Add(true, uint32(1280), uint8(17), uint16(53), uint16(1), uint8(1), uint8(2), uint16(0))
	f.Add(true, uint32(1500), uint8(58), uint16(128<<8), uint16(0), uint8(255), uint8(3), uint16(1460))
	f.Add(false, uint32(0), uint8(1), uint16(3<<8), uint16(0), uint8(0), uint8(4), uint16(0))
	f.Add(false, uint32(65535), uint8(6), uint16(443), uint16(51000), uint8(64), uint8(1), uint16(9000))
	f.Add(false, uint32(1400), uint8(6), uint16(443), uint16(51000), uint8(64), uint8(1), uint16(19))
	f.Add(true, uint32(9000), uint8(6), uint16(443), uint16(51000), uint8(64), uint8(1), uint16(8960))
	f.Fuzz(func(t *testing.T, v6 bool, mtu uint32, proto uint8, sport, dport uint16, hop, host uint8, innerLen uint16) {
		s := ptbtest.Spec{Router: router4, VIP: vip4, Client: client4,
			MTU: mtu, Proto: proto, SrcPort: sport, DstPort: dport, HopLimit: hop}
		// innerLen is the quoted IPv4 total length or IPv6 payload length;
		// 0 keeps ptbtest's default of a 9000-byte packet.
		quoted := uint32(9000)
		if innerLen != 0 {
			s.InnerLen, quoted = int(innerLen), uint32(innerLen)
		}
		if v6 {
			s.Router, s.VIP, s.Client = router6, vip6, client6
			if innerLen != 0 {
				s.InnerLen, quoted = int(innerLen)+40, uint32(innerLen)+40
			}
		}
		s.Client = withLastByte(s.Client, host)
		pkt := ptbtest.Build(s)

		// What the spec says Parse must answer.
		lim := ptb.DefaultLimits()
		lo, hi := lim.MinMTU6, lim.MaxMTU6
		if !v6 {
			mtu = uint32(uint16(mtu)) // the IPv4 field is 16 bits
			lo, hi = lim.MinMTU4, lim.MaxMTU4
		}
		if proto == 0 {
			proto = 6 // ptbtest's default
		}
		if hop == 0 {
			hop = 64
		}
		icmpType := uint8(sport >> 8) // the quoted L4 header starts with the source port
		want := drop.None
		switch {
		case mtu < lo || mtu > hi:
			want = drop.BadMTU
		case !v6 && quoted < 20:
			want = drop.InnerBadLength
		case mtu >= quoted:
			want = drop.MTUNotSmaller
		case !v6 && proto == 1 && (icmpType == 3 || icmpType == 4 || icmpType == 5 || icmpType == 11 || icmpType == 12):
			want = drop.InnerICMPError
		case v6 && proto == 58 && icmpType < 128:
			want = drop.InnerICMPError
		case v6 && (proto == 0 || proto == 43 || proto == 44 || proto == 60):
			// The quoted "next header" is an extension header, and the
			// TCP-like bytes ptbtest put there are read as one.
			var m ptb.Message
			if r := ptb.Parse(pkt, lim, &m); r != drop.None && !r.Malformed() {
				t.Fatalf("Parse = %v", r)
			}
			return
		}
		var m ptb.Message
		if r := ptb.Parse(pkt, lim, &m); r != want {
			t.Fatalf("Parse = %v, want %v", r, want)
		}
		if want != drop.None {
			return
		}
		checkInvariants(t, pkt, lim, &m)
		wantFlow := ptb.Flow{Src: s.VIP, Dst: s.Client, Proto: proto}
		switch proto {
		case 6, 17, 132, 136:
			wantFlow.SrcPort, wantFlow.DstPort = sport, dport
		}
		if m.Src != s.Router || m.Dst != s.VIP || m.HopLimit != hop || m.MTU != mtu || m.Inner != wantFlow {
			t.Fatalf("Parse = %+v, spec %+v", m, s)
		}
	})
}

// fixChecksums recomputes the checksums of pkt where its lengths allow,
// taking an IPv6 packet's ICMPv6 message to start right after its header.
func fixChecksums(pkt []byte) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || total > len(pkt) || total < ihl+4 {
			return
		}
		fix4(pkt)
	case len(pkt) >= 44 && pkt[0]>>4 == 6:
		if 40+int(binary.BigEndian.Uint16(pkt[4:])) > len(pkt) || binary.BigEndian.Uint16(pkt[4:]) < 4 {
			return
		}
		fix6(pkt, 40)
	}
}

func withLastByte(a netip.Addr, b uint8) netip.Addr {
	if a.Is4() {
		x := a.As4()
		x[3] = b
		return netip.AddrFrom4(x)
	}
	x := a.As16()
	x[15] = b
	return netip.AddrFrom16(x)
}
