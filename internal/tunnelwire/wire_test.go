package tunnelwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func testPacket(family uint8, n int) []byte {
	p := make([]byte, n)
	p[0] = family << 4
	for i := 1; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

func testRing(t testing.TB, hexKeys ...string) *Keyring {
	t.Helper()
	var keys []Key
	for _, h := range hexKeys {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKey(b)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	r, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	keyA = "000102030405060708090a0b0c0d0e0f"
	keyB = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa9988"
)

func seal(s *Sealer, h Header, pkt []byte) []byte {
	d := make([]byte, HeaderLen, HeaderLen+len(pkt))
	s.Seal(d, &h, pkt)
	return append(d, pkt...)
}

// TestGolden pins the layout: a change is a new Version.
func TestGolden(t *testing.T) {
	h := Header{Family: 4, Timestamp: 0x0102030405060708, Epoch: 0x1112131415161718, Counter: 0x2122232425262728}
	var b [HeaderLen]byte
	for i := range b {
		b[i] = 0xee // every byte must be written
	}
	NewSealer(nil).Seal(b[:], &h, testPacket(4, 20))
	want, _ := hex.DecodeString("504d5455" + "02" + "04" + "0000" + "00000000" +
		"0102030405060708" + "1112131415161718" + "2122232425262728" + "00000000000000000000000000000000")
	if !bytes.Equal(b[:], want) {
		t.Fatalf("header\n got % x\nwant % x", b, want)
	}
	// Signed: key id is SHA-256(key)[:4], the MAC is HMAC-SHA256 truncated.
	// Values computed independently, with Python's hmac and hashlib modules.
	d := seal(NewSealer(testRing(t, keyA)), h, testPacket(4, 20))
	if got := hex.EncodeToString(d[8:12]); got != goldenKeyIDA {
		t.Errorf("key id %s, want %s", got, goldenKeyIDA)
	}
	if got := hex.EncodeToString(d[macOffset:HeaderLen]); got != goldenMACA {
		t.Errorf("mac %s, want %s", got, goldenMACA)
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, fam := range []uint8{4, 6} {
		pkt := testPacket(fam, 60)
		in := Header{Family: fam, Timestamp: -5, Epoch: 7, Counter: 1 << 63}
		d := seal(NewSealer(testRing(t, keyA)), in, pkt)
		var out Header
		got, err := Parse(d, &out)
		if err != nil || !bytes.Equal(got, pkt) {
			t.Fatalf("v%d: Parse = %d bytes, %v", fam, len(got), err)
		}
		in.KeyID, in.MAC = out.KeyID, out.MAC
		if out != in {
			t.Errorf("v%d: got %+v, want %+v", fam, out, in)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := seal(NewSealer(nil), Header{Family: 4}, testPacket(4, 28))
	mut := func(i int, v byte) []byte {
		d := bytes.Clone(good)
		d[i] = v
		return d
	}
	for _, tc := range []struct {
		name string
		d    []byte
		want error
	}{
		{"short", good[:HeaderLen+MinIPHeader-1], ErrShort},
		{"empty", nil, ErrShort},
		{"magic", mut(0, 'X'), ErrMagic},
		{"version 1", mut(4, 1), ErrVersion},
		{"version 3", mut(4, 3), ErrVersion},
		{"reserved", mut(7, 1), ErrReserved},
		{"family 5", mut(5, 5), ErrFamily},
		{"family 6, packet 4", mut(5, 6), ErrFamily},
		{"packet 6, family 4", mut(HeaderLen, 0x60), ErrFamily},
	} {
		var h Header
		if _, err := Parse(tc.d, &h); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}
