package ptb_test

import (
	"encoding/binary"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

type parseCase struct {
	name  string
	pkt   func() []byte
	lim   *ptb.Limits // nil: DefaultLimits
	want  drop.Reason
	inner *ptb.Flow // checked on success; nil: the spec's TCP flow
	mtu   uint32    // checked on success; 0: 1400
}

func build4(proto uint8, edit func([]byte) []byte) func() []byte {
	return func() []byte { return edit(ptbtest.Build(spec4(proto))) }
}

func build6(proto uint8, edit func([]byte) []byte) func() []byte {
	return func() []byte { return edit(ptbtest.Build(spec6(proto))) }
}

func same(b []byte) []byte { return b }

func strict() *ptb.Limits { l := ptb.StrictLimits(); return &l }

var cases4 = []parseCase{
	// Good.
	{name: "tcp", pkt: build4(6, same)},
	{name: "udp", pkt: build4(17, same), inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 17, SrcPort: 443, DstPort: 51000}},
	{name: "sctp", pkt: build4(132, same), inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 132, SrcPort: 443, DstPort: 51000}},
	{name: "udplite", pkt: build4(136, same), inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 136, SrcPort: 443, DstPort: 51000}},
	{name: "gre has no ports", pkt: build4(47, same), inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 47}},
	{name: "inner icmp echo", pkt: func() []byte {
		s := spec4(1)
		s.SrcPort = 8 << 8 // type 8 code 0: echo request
		return ptbtest.Build(s)
	}, inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 1}},
	{name: "trailing padding", pkt: build4(6, func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0) })},
	{name: "outer options", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 20, 0x94, 0x04, 0, 0) // router alert (RFC 2113)
		b[0] = 0x46
		addTotal4(b, 4)
		return fixHdr4(b)
	})},
	{name: "inner options", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 48, 1, 1, 1, 0) // NOP NOP NOP EOL
		b[28] = 0x46
		addTotal4(b, 4)
		return fix4(b)
	})},
	{name: "quote is header and 4 bytes", pkt: build4(6, func(b []byte) []byte { return cut4(b, 24) })},
	{name: "long quote", pkt: build4(6, func(b []byte) []byte { return grow4(b, 500) })},
	{name: "inner later fragment has no ports", pkt: build4(6, func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[28+6:], 185) // offset 1480
		return cut4(b, 28)                        // ports absent, and not needed
	}), inner: &ptb.Flow{Src: vip4, Dst: client4, Proto: 6}},
	{name: "strict 1499", pkt: func() []byte { s := spec4(6); s.MTU = 1499; return ptbtest.Build(s) }, lim: strict(), mtu: 1499},
	{name: "default 68", pkt: func() []byte { s := spec4(6); s.MTU = 68; return ptbtest.Build(s) }, mtu: 68},

	// Outer header.
	{name: "empty", pkt: func() []byte { return nil }, want: drop.Truncated},
	{name: "short header", pkt: build4(6, func(b []byte) []byte { return b[:19] }), want: drop.Truncated},
	{name: "options beyond buffer", pkt: build4(6, func(b []byte) []byte { b[0] = 0x4f; return b[:40] }), want: drop.Truncated},
	{name: "icmp header short", pkt: build4(6, func(b []byte) []byte {
		b = b[:24]
		binary.BigEndian.PutUint16(b[2:], 24)
		return fixHdr4(b)
	}), want: drop.Truncated},
	{name: "version 5", pkt: build4(6, func(b []byte) []byte { b[0] = 0x55; return b }), want: drop.BadIPVersion},
	{name: "version 0", pkt: build4(6, func(b []byte) []byte { b[0] = 0x05; return b }), want: drop.BadIPVersion},
	{name: "ihl 4", pkt: build4(6, func(b []byte) []byte { b[0] = 0x44; return b }), want: drop.BadIPHeader},
	{name: "total length beyond buffer", pkt: build4(6, func(b []byte) []byte { addTotal4(b, 1); return fixHdr4(b) }), want: drop.BadIPHeader},
	{name: "total length below ihl", pkt: build4(6, func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[2:], 19)
		return fixHdr4(b)
	}), want: drop.BadIPHeader},
	{name: "header checksum", pkt: build4(6, func(b []byte) []byte { b[10] ^= 1; return b }), want: drop.BadIPHeader},
	{name: "header checksum covers options", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 20, 0x94, 0x04, 0, 0)
		b[0] = 0x46
		addTotal4(b, 4)
		fixHdr4(b)
		b[22] = 1 // inside the option
		return b
	}), want: drop.BadIPHeader},
	{name: "outer option length zero", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 20, 0x94, 0x00, 0, 0) // router alert claiming length 0
		b[0] = 0x46
		addTotal4(b, 4)
		return fixHdr4(b)
	}), want: drop.BadIPHeader},
	{name: "outer option runs past the header", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 20, 1, 0x07, 0x09, 0) // NOP, then type 7 claiming 9 bytes in 3
		b[0] = 0x46
		addTotal4(b, 4)
		return fixHdr4(b)
	}), want: drop.BadIPHeader},
	{name: "inner option without its length byte", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 48, 1, 1, 1, 0x44) // NOP NOP NOP, timestamp type with no length
		b[28] = 0x46
		addTotal4(b, 4)
		return fix4(b)
	}), want: drop.InnerBadHeader},
	{name: "more fragments", pkt: build4(6, func(b []byte) []byte { b[6] |= 0x20; return fixHdr4(b) }), want: drop.Fragment},
	{name: "fragment offset", pkt: build4(6, func(b []byte) []byte { b[7] = 1; return fixHdr4(b) }), want: drop.Fragment},
	{name: "tcp not icmp", pkt: build4(6, func(b []byte) []byte { b[9] = 6; return fixHdr4(b) }), want: drop.NotICMP},
	{name: "icmpv6 in ipv4", pkt: build4(6, func(b []byte) []byte { b[9] = 58; return fixHdr4(b) }), want: drop.NotICMP},

	// ICMP.
	{name: "icmp checksum", pkt: build4(6, func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b }), want: drop.BadChecksum},
	{name: "padding not summed", pkt: build4(6, func(b []byte) []byte { return append(b, 0xff, 0xff) })},
	{name: "port unreachable", pkt: build4(6, func(b []byte) []byte { b[21] = 3; return fix4(b) }), want: drop.NotPTB},
	{name: "time exceeded", pkt: build4(6, func(b []byte) []byte { b[20], b[21] = 11, 0; return fix4(b) }), want: drop.NotPTB},
	{name: "echo reply", pkt: build4(6, func(b []byte) []byte { b[20], b[21] = 0, 0; return fix4(b) }), want: drop.NotPTB},
	{name: "mtu 0 (pre-RFC 1191)", pkt: func() []byte { s := spec4(6); s.MTU = 0; return ptbtest.Build(s) }, want: drop.BadMTU},
	{name: "mtu 67", pkt: func() []byte { s := spec4(6); s.MTU = 67; return ptbtest.Build(s) }, want: drop.BadMTU},
	{name: "strict 1500", pkt: func() []byte { s := spec4(6); s.MTU = 1500; return ptbtest.Build(s) }, lim: strict(), want: drop.BadMTU},
	{name: "strict 575", pkt: func() []byte { s := spec4(6); s.MTU = 575; return ptbtest.Build(s) }, lim: strict(), want: drop.BadMTU},

	// Quoted packet.
	{name: "no quote", pkt: build4(6, func(b []byte) []byte { return cut4(b, 0) }), want: drop.InnerTruncated},
	{name: "quote shorter than header", pkt: build4(6, func(b []byte) []byte { return cut4(b, 19) }), want: drop.InnerTruncated},
	{name: "quote without ports", pkt: build4(6, func(b []byte) []byte { return cut4(b, 20) }), want: drop.InnerTruncated},
	{name: "quote with half the ports", pkt: build4(17, func(b []byte) []byte { return cut4(b, 23) }), want: drop.InnerTruncated},
	{name: "quote options beyond quote", pkt: build4(6, func(b []byte) []byte { b[28] = 0x4f; return cut4(b, 40) }), want: drop.InnerTruncated},
	{name: "inner icmp without type", pkt: build4(1, func(b []byte) []byte { return cut4(b, 20) }), want: drop.InnerTruncated},
	{name: "ipv6 quoted in icmpv4", pkt: build4(6, func(b []byte) []byte { b[28] = 0x60; return fix4(b) }), want: drop.InnerBadVersion},
	{name: "quoted version 0", pkt: build4(6, func(b []byte) []byte { b[28] = 0x05; return fix4(b) }), want: drop.InnerBadVersion},
	{name: "quoted ihl 3", pkt: build4(6, func(b []byte) []byte { b[28] = 0x43; return fix4(b) }), want: drop.InnerBadHeader},
	{name: "quoted frag-needed", pkt: func() []byte { s := spec4(1); s.SrcPort = 3<<8 | 4; return ptbtest.Build(s) }, want: drop.InnerICMPError},
	{name: "quoted time exceeded", pkt: func() []byte { s := spec4(1); s.SrcPort = 11 << 8; return ptbtest.Build(s) }, want: drop.InnerICMPError},
	{name: "quoted parameter problem", pkt: func() []byte { s := spec4(1); s.SrcPort = 12 << 8; return ptbtest.Build(s) }, want: drop.InnerICMPError},
	{name: "quoted total length 0", pkt: inner4(1400, 0), want: drop.InnerBadLength},
	{name: "quoted total length 19", pkt: inner4(1400, 19), want: drop.InnerBadLength},
	{name: "quoted total length inside its options", pkt: build4(6, func(b []byte) []byte {
		b = insert(b, 48, 1, 1, 1, 0)
		b[28] = 0x46
		binary.BigEndian.PutUint16(b[28+2:], 23) // header is 24 bytes
		addTotal4(b, 4)
		return fix4(b)
	}), want: drop.InnerBadLength},
	{name: "mtu 65535 quoting 9000 bytes", pkt: inner4(65535, 9000), want: drop.MTUNotSmaller},
	{name: "mtu equals quoted length", pkt: inner4(1400, 1400), want: drop.MTUNotSmaller},
	{name: "quoted length is only its header", pkt: inner4(1400, 20), want: drop.MTUNotSmaller},
	{name: "mtu one below quoted length", pkt: inner4(1399, 1400), mtu: 1399},
	{name: "default 65534 quoting 65535", pkt: inner4(65534, 65535), mtu: 65534},
}

// inner4 builds the TCP case with the given MTU and quoted total length.
func inner4(mtu uint32, innerLen int) func() []byte {
	return func() []byte {
		s := spec4(6)
		s.MTU = mtu
		if innerLen == 0 {
			return build4(6, func(b []byte) []byte {
				b[28+2], b[28+3] = 0, 0
				return fix4(b)
			})()
		}
		s.InnerLen = innerLen
		return ptbtest.Build(s)
	}
}

// inner6 builds the TCP case with the given MTU and quoted payload length.
func inner6(mtu uint32, payload int) func() []byte {
	return func() []byte {
		b := ptbtest.Build(spec6(6))
		binary.BigEndian.PutUint32(b[44:], mtu)
		binary.BigEndian.PutUint16(b[48+4:], uint16(payload))
		return fix6(b, 40)
	}
}

// ext6 inserts an outer extension header of kind next before the ICMPv6 message.
func ext6(b []byte, next byte, hdr ...byte) []byte {
	hdr[0] = b[6] // the new header points to what the IPv6 header pointed to
	b = insert(b, 40, hdr...)
	b[6] = next
	addPayload6(b, len(hdr))
	return b
}

// innerExt6 inserts an extension header into the quoted packet (at 48).
func innerExt6(b []byte, next byte, hdr ...byte) []byte {
	hdr[0] = b[48+6]
	b = insert(b, 88, hdr...)
	b[48+6] = next
	addPayload6(b, len(hdr))
	return fix6(b, 40)
}

func pad8() []byte { return []byte{0, 0, 1, 4, 0, 0, 0, 0} } // next, len 0, PadN(4)

var cases6 = []parseCase{
	// Good.
	{name: "tcp", pkt: build6(6, same)},
	{name: "udp", pkt: build6(17, same), inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 17, SrcPort: 443, DstPort: 51000}},
	{name: "sctp", pkt: build6(132, same), inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 132, SrcPort: 443, DstPort: 51000}},
	{name: "gre has no ports", pkt: build6(47, same), inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 47}},
	{name: "inner echo request", pkt: func() []byte { s := spec6(58); s.SrcPort = 128 << 8; return ptbtest.Build(s) },
		inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 58}},
	{name: "trailing padding", pkt: build6(6, func(b []byte) []byte { return append(b, 0, 0, 0, 0) })},
	{name: "hop-by-hop", pkt: build6(6, func(b []byte) []byte { return fix6(ext6(b, 0, pad8()...), 48) })},
	{name: "dstopts and routing", pkt: build6(6, func(b []byte) []byte {
		b = ext6(b, 43, 0, 0, 4, 0, 0, 0, 0, 0) // routing, segments left 0
		b = ext6(b, 60, 0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		return fix6(b, 64)
	})},
	{name: "ext headers are outside the checksum", pkt: build6(6, func(b []byte) []byte { return ext6(b, 60, pad8()...) })},
	{name: "eight headers", pkt: build6(6, func(b []byte) []byte {
		for range 8 {
			b = ext6(b, 60, pad8()...)
		}
		return fix6(b, 40+64)
	})},
	{name: "inner dstopts", pkt: build6(6, func(b []byte) []byte { return innerExt6(b, 60, pad8()...) })},
	{name: "inner first fragment", pkt: build6(17, func(b []byte) []byte {
		return innerExt6(b, 44, 0, 0, 0, 1, 0, 0, 0, 42) // offset 0, M set
	}), inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 17, SrcPort: 443, DstPort: 51000}},
	{name: "inner later fragment has no ports", pkt: build6(17, func(b []byte) []byte {
		b = innerExt6(b, 44, 0, 0, 0x05, 0xa8, 0, 0, 0, 42) // offset 181*8
		return cut6(b, 48)
	}), inner: &ptb.Flow{Src: vip6, Dst: client6, Proto: 17}},
	{name: "long quote", pkt: build6(6, func(b []byte) []byte { return grow6(b, 1280-len(b)) })},
	{name: "strict 1499", pkt: func() []byte { s := spec6(6); s.MTU = 1499; return ptbtest.Build(s) }, lim: strict(), mtu: 1499},
	{name: "default 65535", pkt: inner6(65535, 65535), mtu: 65535},
	{name: "mtu one below quoted length", pkt: inner6(1399, 1360), mtu: 1399},

	// Outer header.
	{name: "short header", pkt: build6(6, func(b []byte) []byte { return b[:39] }), want: drop.Truncated},
	{name: "icmp header short", pkt: build6(6, func(b []byte) []byte {
		b = b[:47]
		binary.BigEndian.PutUint16(b[4:], 7)
		return b
	}), want: drop.Truncated},
	{name: "jumbo payload length", pkt: build6(6, func(b []byte) []byte { b[4], b[5] = 0, 0; return b }), want: drop.Truncated},
	{name: "ext header beyond packet", pkt: build6(6, func(b []byte) []byte {
		b = ext6(b, 60, pad8()...)
		b[41] = 200
		return b
	}), want: drop.Truncated},
	{name: "payload length beyond buffer", pkt: build6(6, func(b []byte) []byte { addPayload6(b, 1); return b }), want: drop.BadIPHeader},
	{name: "nine headers", pkt: build6(6, func(b []byte) []byte {
		for range 9 {
			b = ext6(b, 60, pad8()...)
		}
		return fix6(b, 40+72)
	}), want: drop.BadIPHeader},
	{name: "hop-by-hop not first", pkt: build6(6, func(b []byte) []byte {
		b = ext6(b, 0, pad8()...)
		b = ext6(b, 60, pad8()...)
		return fix6(b, 56)
	}), want: drop.BadIPHeader},
	{name: "fragment header", pkt: build6(6, func(b []byte) []byte {
		return fix6(ext6(b, 44, 0, 0, 0, 1, 0, 0, 0, 7), 48)
	}), want: drop.Fragment},
	{name: "tcp not icmp", pkt: build6(6, func(b []byte) []byte { b[6] = 6; return b }), want: drop.NotICMP},
	{name: "icmpv4 in ipv6", pkt: build6(6, func(b []byte) []byte { b[6] = 1; return b }), want: drop.NotICMP},
	{name: "dstopts then no next header", pkt: build6(6, func(b []byte) []byte {
		b = ext6(b, 60, pad8()...)
		b[40] = 59 // no next header
		return b
	}), want: drop.NotICMP},

	// ICMPv6.
	{name: "icmp checksum", pkt: build6(6, func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b }), want: drop.BadChecksum},
	{name: "pseudo-header destination", pkt: build6(6, func(b []byte) []byte { b[39] ^= 1; return b }), want: drop.BadChecksum},
	{name: "pseudo-header source", pkt: build6(6, func(b []byte) []byte { b[8] ^= 0x80; return b }), want: drop.BadChecksum},
	{name: "destination unreachable", pkt: build6(6, func(b []byte) []byte { b[40], b[41] = 1, 4; return fix6(b, 40) }), want: drop.NotPTB},
	{name: "ptb code 1", pkt: build6(6, func(b []byte) []byte { b[41] = 1; return fix6(b, 40) }), want: drop.NotPTB},
	{name: "mtu 1279", pkt: func() []byte { s := spec6(6); s.MTU = 1279; return ptbtest.Build(s) }, want: drop.BadMTU},
	{name: "mtu 65536", pkt: func() []byte { s := spec6(6); s.MTU = 65536; return ptbtest.Build(s) }, want: drop.BadMTU},
	{name: "mtu max uint32", pkt: func() []byte { s := spec6(6); s.MTU = 1<<32 - 1; return ptbtest.Build(s) }, want: drop.BadMTU},
	{name: "strict 1500", pkt: func() []byte { s := spec6(6); s.MTU = 1500; return ptbtest.Build(s) }, lim: strict(), want: drop.BadMTU},

	// Quoted packet.
	{name: "no quote", pkt: build6(6, func(b []byte) []byte { return cut6(b, 0) }), want: drop.InnerTruncated},
	{name: "quote shorter than header", pkt: build6(6, func(b []byte) []byte { return cut6(b, 39) }), want: drop.InnerTruncated},
	{name: "quote without ports", pkt: build6(6, func(b []byte) []byte { return cut6(b, 43) }), want: drop.InnerTruncated},
	{name: "quoted ext header cut", pkt: build6(6, func(b []byte) []byte {
		b = innerExt6(b, 60, pad8()...)
		return cut6(b, 45)
	}), want: drop.InnerTruncated},
	{name: "quoted fragment header cut", pkt: build6(6, func(b []byte) []byte {
		b = innerExt6(b, 44, 0, 0, 0, 1, 0, 0, 0, 42)
		return cut6(b, 47)
	}), want: drop.InnerTruncated},
	{name: "ipv4 quoted in icmpv6", pkt: build6(6, func(b []byte) []byte { b[48] = 0x45; return fix6(b, 40) }), want: drop.InnerBadVersion},
	{name: "quoted nine headers", pkt: build6(6, func(b []byte) []byte {
		for range 9 {
			b = innerExt6(b, 60, pad8()...)
		}
		return b
	}), want: drop.InnerBadHeader},
	{name: "quoted hop-by-hop not first", pkt: build6(6, func(b []byte) []byte {
		b = innerExt6(b, 0, pad8()...)
		return innerExt6(b, 60, pad8()...)
	}), want: drop.InnerBadHeader},
	{name: "quoted packet too big", pkt: func() []byte { s := spec6(58); s.SrcPort = 2 << 8; return ptbtest.Build(s) }, want: drop.InnerICMPError},
	{name: "quoted type 127", pkt: func() []byte { s := spec6(58); s.SrcPort = 127 << 8; return ptbtest.Build(s) }, want: drop.InnerICMPError},
	{name: "quoted icmpv6 without type", pkt: build6(58, func(b []byte) []byte { return cut6(b, 40) }), want: drop.InnerTruncated},
	{name: "mtu equals quoted length", pkt: inner6(1400, 1360), want: drop.MTUNotSmaller},
	{name: "mtu 65535 quoting 9000 bytes", pkt: inner6(65535, 8960), want: drop.MTUNotSmaller},
	{name: "quoted jumbogram", pkt: inner6(1400, 0), want: drop.MTUNotSmaller},
}

func TestParse(t *testing.T) {
	run := func(t *testing.T, fam uint8, cases []parseCase) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				pkt := tc.pkt()
				lim := ptb.DefaultLimits()
				if tc.lim != nil {
					lim = *tc.lim
				}
				var m ptb.Message
				got := ptb.Parse(pkt, lim, &m)
				if got != tc.want {
					t.Fatalf("Parse = %v, want %v", got, tc.want)
				}
				if got != drop.None {
					if !got.Malformed() {
						t.Fatalf("%v is not a parse reason", got)
					}
					return
				}
				checkInvariants(t, pkt, lim, &m)
				want := ptb.Flow{Src: vip4, Dst: client4, Proto: 6, SrcPort: 443, DstPort: 51000}
				src, dst := router4, vip4
				if fam == 6 {
					want = ptb.Flow{Src: vip6, Dst: client6, Proto: 6, SrcPort: 443, DstPort: 51000}
					src, dst = router6, vip6
				}
				if tc.inner != nil {
					want = *tc.inner
				}
				mtu := tc.mtu
				if mtu == 0 {
					mtu = 1400
				}
				if m.Family != fam || m.Src != src || m.Dst != dst || m.HopLimit != 61 || m.MTU != mtu {
					t.Errorf("outer = %d %v > %v hop %d mtu %d", m.Family, m.Src, m.Dst, m.HopLimit, m.MTU)
				}
				if m.Inner != want {
					t.Errorf("Inner = %+v, want %+v", m.Inner, want)
				}
				var stated int
				if fam == 4 {
					stated = int(binary.BigEndian.Uint16(pkt[2:]))
				} else {
					stated = 40 + int(binary.BigEndian.Uint16(pkt[4:]))
				}
				if len(m.Packet) != stated {
					t.Errorf("len(Packet) = %d, want the stated %d", len(m.Packet), stated)
				}
			})
		}
	}
	t.Run("v4", func(t *testing.T) { run(t, 4, cases4) })
	t.Run("v6", func(t *testing.T) { run(t, 6, cases6) })
}

// Every parse reason must be reachable from some table case, or the table
// has a hole.
func TestParseCoversReasons(t *testing.T) {
	seen := map[drop.Reason]bool{}
	for _, tc := range append(append([]parseCase{}, cases4...), cases6...) {
		seen[tc.want] = true
	}
	for _, r := range drop.All() {
		if r.Malformed() && !seen[r] {
			t.Errorf("no test case for %v", r)
		}
	}
}

// On failure the fields decoded so far stay set, for the drop log.
func TestParsePartialOnFailure(t *testing.T) {
	s := spec4(6)
	s.MTU = 0
	var m ptb.Message
	if r := ptb.Parse(ptbtest.Build(s), ptb.DefaultLimits(), &m); r != drop.BadMTU {
		t.Fatalf("Parse = %v", r)
	}
	if m.Src != router4 || m.Dst != vip4 || m.MTU != 0 || m.Family != 4 || m.Inner.Src.IsValid() {
		t.Fatalf("partial message = %+v", m)
	}
	// A reused Message is cleared first.
	if r := ptb.Parse([]byte{0x45}, ptb.DefaultLimits(), &m); r != drop.Truncated || m.Src.IsValid() {
		t.Fatalf("Parse = %v, Src %v", r, m.Src)
	}
}

func TestZeroLimitsAcceptNothing(t *testing.T) {
	var m ptb.Message
	for _, pkt := range [][]byte{ptbtest.Build(spec4(6)), ptbtest.Build(spec6(6))} {
		if r := ptb.Parse(pkt, ptb.Limits{}, &m); r != drop.BadMTU {
			t.Errorf("Parse with zero Limits = %v", r)
		}
	}
}

func TestParseNoAlloc(t *testing.T) {
	lim := ptb.DefaultLimits()
	for name, pkt := range map[string][]byte{
		"v4":      ptbtest.Build(spec4(6)),
		"v6":      ptbtest.Build(spec6(6)),
		"v6 ext":  fix6(ext6(ptbtest.Build(spec6(6)), 0, pad8()...), 48),
		"bad mtu": ptbtest.Build(ptbtest.Spec{Router: router6, VIP: vip6, Client: client6, MTU: 1}),
		"garbage": {0x60, 1, 2, 3},
	} {
		var m ptb.Message
		if n := testing.AllocsPerRun(100, func() { ptb.Parse(pkt, lim, &m) }); n != 0 {
			t.Errorf("%s: %v allocs per Parse", name, n)
		}
	}
}
