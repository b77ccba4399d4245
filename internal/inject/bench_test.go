package inject

import (
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// What a forged datagram (a peer's address, a MAC that does not verify)
// costs the receiver: the whole path up to the MAC, no state touched.
func BenchmarkClassifyForged(b *testing.B) {
	g := testGate(b, nil)
	d := forge(datagram(4, ptb4()))
	now := time.Now()
	var m ptb.Message
	b.ReportAllocs()
	for b.Loop() {
		if _, res, _ := g.Classify(d, peer4, now, &m); res != BadMAC {
			b.Fatal(res)
		}
	}
}

// A replayed genuine datagram: MAC, freshness and the replay window.
func BenchmarkClassifyReplayed(b *testing.B) {
	g := testGate(b, nil)
	d := datagram(4, ptb4())
	now := time.Now()
	var m ptb.Message
	g.Classify(d, peer4, now, &m)
	b.ReportAllocs()
	for b.Loop() {
		if _, res, _ := g.Classify(d, peer4, now, &m); res != Replayed {
			b.Fatal(res)
		}
	}
}
