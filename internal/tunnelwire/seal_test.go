package tunnelwire

import (
	"bytes"
	"errors"
	"testing"
)

const (
	goldenKeyIDA = "be45cb26"
	goldenMACA   = "668fdeab828bc7989bce74c700d65ce1"
)

func TestOpen(t *testing.T) {
	a, b := testRing(t, keyA), testRing(t, keyB)
	both := testRing(t, keyB, keyA) // B signs, both verify: a rotation
	pkt := testPacket(6, 48)
	h := Header{Family: 6, Timestamp: 1, Epoch: 2, Counter: 3}
	byA := seal(NewSealer(a), h, pkt)
	byBoth := seal(NewSealer(both), h, pkt)
	tampered := bytes.Clone(byA)
	tampered[len(tampered)-1] ^= 1
	tamperedHdr := bytes.Clone(byA)
	tamperedHdr[35] ^= 1 // the counter
	for _, tc := range []struct {
		name string
		o    *Opener
		d    []byte
		want error
	}{
		{"same key", NewOpener(a), byA, nil},
		{"old key still verifies", NewOpener(both), byA, nil},
		{"new signer, old receiver", NewOpener(a), byBoth, ErrUnknownKey},
		{"new signer, rotated receiver", NewOpener(testRing(t, keyA, keyB)), byBoth, nil},
		{"wrong key", NewOpener(b), byA, ErrUnknownKey},
		{"unsigned", NewOpener(a), seal(NewSealer(nil), h, pkt), ErrUnknownKey},
		{"packet changed", NewOpener(a), tampered, ErrBadMAC},
		{"header changed", NewOpener(a), tamperedHdr, ErrBadMAC},
		{"not a datagram", NewOpener(a), []byte("hello"), ErrShort},
	} {
		var got Header
		p, err := tc.o.Open(tc.d, &got)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err == nil && (!bytes.Equal(p, pkt) || got.Counter != 3) {
			t.Errorf("%s: packet or header changed", tc.name)
		}
	}
}

// A key id collision with a different key must fail the MAC, not pass.
func TestOpenSameIDOtherKey(t *testing.T) {
	a := testRing(t, keyA)
	d := seal(NewSealer(testRing(t, keyB)), Header{Family: 4}, testPacket(4, 20))
	copy(d[8:12], a.keys[0].ID[:]) // forge the id
	var h Header
	if _, err := NewOpener(a).Open(d, &h); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("err %v, want ErrBadMAC", err)
	}
}

func TestSealOpenDoNotAllocate(t *testing.T) {
	ring := testRing(t, keyA, keyB)
	s, o := NewSealer(ring), NewOpener(ring)
	pkt := testPacket(4, 576)
	d := make([]byte, HeaderLen+len(pkt))
	copy(d[HeaderLen:], pkt)
	var h Header
	n := testing.AllocsPerRun(100, func() {
		h = Header{Family: 4, Counter: h.Counter + 1}
		s.Seal(d, &h, pkt)
		if _, err := o.Open(d, &h); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per seal+open", n)
	}
}

func TestFresh(t *testing.T) {
	for _, tc := range []struct {
		ts, now int64
		want    bool
	}{
		{1000, 1000, true}, {0, 10000, true}, {20000, 10000, true},
		{-1, 10000, false}, {20001, 10000, false},
		{-1 << 63, 1 << 62, false}, {1<<63 - 1, -1 << 62, false},
	} {
		if got := Fresh(tc.ts, tc.now, 10000); got != tc.want {
			t.Errorf("Fresh(%d, %d) = %v", tc.ts, tc.now, got)
		}
	}
}
