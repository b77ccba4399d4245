package tunnelwire

import "testing"

func benchPair(b *testing.B, n int) (*Sealer, *Opener, []byte, []byte) {
	ring := testRing(b, keyA)
	pkt := testPacket(4, n)
	d := make([]byte, HeaderLen+n)
	copy(d[HeaderLen:], pkt)
	return NewSealer(ring), NewOpener(ring), d, pkt
}

// 576 bytes: a full-size IPv4 PTB (the ICMP error quotes up to 576).
func BenchmarkSeal(b *testing.B) {
	s, _, d, pkt := benchPair(b, 576)
	h := Header{Family: 4}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		h.Counter++
		s.Seal(d, &h, pkt)
	}
}

func BenchmarkOpen(b *testing.B) {
	s, o, d, pkt := benchPair(b, 576)
	h := Header{Family: 4}
	s.Seal(d, &h, pkt)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(d, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWindow(b *testing.B) {
	var w Window
	c := uint64(0)
	for b.Loop() {
		c++
		w.Accept(1, c, 0)
	}
}
