package tunnelwire

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts marshals back to the
// same bytes and parses again to the same header.
func FuzzParse(f *testing.F) {
	f.Add(seal(NewSealer(testRing(f, keyA)), Header{Family: 4, Counter: 9}, testPacket(4, 28)))
	f.Add(seal(NewSealer(nil), Header{Family: 6}, testPacket(6, 40)))
	f.Add([]byte("PMTU\x01\x04\x00\x00"))
	f.Fuzz(func(t *testing.T, d []byte) {
		var h Header
		pkt, err := Parse(d, &h)
		if err != nil {
			return
		}
		var b [HeaderLen]byte
		h.Marshal(b[:])
		if !bytes.Equal(b[:], d[:HeaderLen]) || !bytes.Equal(pkt, d[HeaderLen:]) {
			t.Fatalf("marshal(parse(d)) != d")
		}
		var h2 Header
		if _, err := Parse(append(b[:], pkt...), &h2); err != nil || h2 != h {
			t.Fatalf("second parse: %v %+v %+v", err, h2, h)
		}
	})
}

// FuzzOpen: Open never panics and accepts nothing it did not sign, unless
// the fuzzer found the MAC (it will not).
func FuzzOpen(f *testing.F) {
	ring := testRing(f, keyA)
	f.Add(seal(NewSealer(ring), Header{Family: 4, Counter: 9}, testPacket(4, 28)))
	o := NewOpener(ring)
	s := NewSealer(ring)
	f.Fuzz(func(t *testing.T, d []byte) {
		var h Header
		pkt, err := o.Open(d, &h)
		if err != nil {
			return
		}
		// Accepted: it must be exactly what the Sealer makes of it.
		again := make([]byte, HeaderLen)
		s.Seal(again, &h, pkt)
		if !bytes.Equal(again, d[:HeaderLen]) {
			t.Fatalf("accepted a datagram the sealer would not make")
		}
	})
}

// FuzzParseKeyFile: never panics; accepted files have 1..16 keys.
func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte(keyA + "\n# c\n" + keyB + "\n"))
	f.Add([]byte("\n\n#\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseKeyFile(b)
		if err == nil && (r.Len() < 1 || r.Len() > maxKeys) {
			t.Fatalf("%d keys", r.Len())
		}
	})
}

// FuzzWindow: a counter is never accepted twice within one epoch while it
// is inside the window.
func FuzzWindow(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 200, 2})
	f.Fuzz(func(t *testing.T, steps []byte) {
		var w Window
		seen := map[uint64]bool{}
		top := uint64(0)
		for _, s := range steps {
			c := uint64(s) * 13 % 3000
			ok := w.Accept(1, c, 0)
			if ok && seen[c] {
				t.Fatalf("counter %d accepted twice", c)
			}
			if ok {
				seen[c] = true
				top = max(top, c)
			}
		}
		_ = top
	})
}
