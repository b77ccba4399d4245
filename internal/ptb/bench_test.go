package ptb_test

import (
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

func benchParse(b *testing.B, pkt []byte) {
	lim := ptb.DefaultLimits()
	var m ptb.Message
	if r := ptb.Parse(pkt, lim, &m); r != drop.None {
		b.Fatalf("Parse = %v", r)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		ptb.Parse(pkt, lim, &m)
	}
}

// BenchmarkParseV4: the 68-byte frag-needed most routers send (a 40-byte quote).
func BenchmarkParseV4(b *testing.B) { benchParse(b, ptbtest.Build(spec4(6))) }

// BenchmarkParseV6: a packet-too-big quoting 60 bytes.
func BenchmarkParseV6(b *testing.B) { benchParse(b, ptbtest.Build(spec6(6))) }

// BenchmarkParseV4Long: a 576-byte frag-needed, as Linux routers send (RFC 1812 4.3.2.3).
func BenchmarkParseV4Long(b *testing.B) {
	pkt := ptbtest.Build(spec4(6))
	benchParse(b, grow4(pkt, 576-len(pkt)))
}

// BenchmarkParseV6Long: a 1280-byte packet-too-big, the most RFC 4443 2.4 (c) allows.
func BenchmarkParseV6Long(b *testing.B) {
	pkt := ptbtest.Build(spec6(6))
	benchParse(b, grow6(pkt, 1280-len(pkt)))
}
