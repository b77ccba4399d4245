package policy

import (
	"encoding/binary"
	"testing"
)

// checkSame runs ops on table64 and on the map-based table it replaces and
// fails at the first get that answers differently: the same key present
// or absent, and the same state up to table64's unit, never earlier. Each op is 3 bytes: a
// key (few distinct ones, 0 among them, so that keys recur and rotate), a
// time step, and whether to put.
func checkSame(t *testing.T, maxKeys int, horizon int64, ops []byte) {
	t.Helper()
	ref := newTable[uint64](maxKeys, 0, horizon)
	got := newTable64(maxKeys, 0, horizon, nil)
	now := int64(0)
	for i := 0; i+3 <= len(ops); i += 3 {
		k := uint64(ops[i]) * 0x9E3779B97F4A7C15 // spread like a hash; byte 0 gives key 0
		now += int64(ops[i+1]) * horizon / 64
		if ops[i+2]&1 == 1 {
			ref.put(k, now, now)
			got.put(k, now, now)
		}
		rv, rok := ref.get(k)
		gv, gok := got.get(k)
		if rok != gok || !sameUpToUnit(gv, rv, got.cur.shift) {
			t.Fatalf("op %d key %#x: table64 %d %v, map table %d %v", i/3, k, gv, gok, rv, rok)
		}
		if got.cur.n > got.half || got.old.n > got.half {
			t.Fatalf("op %d: generations hold %d and %d keys, at most %d each", i/3, got.cur.n, got.old.n, got.half)
		}
	}
}

// sameUpToUnit reports whether a state read back (got) is the one written
// (want) rounded up to a unit of 2^shift ns.
func sameUpToUnit(got, want int64, shift uint) bool {
	return got >= want && got-want < 1<<shift
}

// pseudoRandomOps is n bytes of a xorshift sequence from seed: ops for
// the table checks that are the same on every run.
func pseudoRandomOps(n int, seed uint64) []byte {
	ops := make([]byte, n+8)
	x := seed
	for i := 0; i < n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(ops[i:], x)
	}
	return ops[:n]
}

func TestTable64MatchesTable(t *testing.T) {
	ops := pseudoRandomOps(3*200000, 1)
	for _, maxKeys := range []int{2, 3, 64, 500} {
		checkSame(t, maxKeys, 1e9, ops)
	}
}

func TestTable64GrowsToItsBound(t *testing.T) {
	tab := newTable64(1000, 0, 1e9, nil)
	for i := range uint64(499) {
		tab.put(i*0x9E3779B97F4A7C15+1, int64(i), 0)
	}
	if n := len(tab.cur.slots); n != slotsFor(500) {
		t.Fatalf("%d slots for 499 keys, want the bound %d", n, slotsFor(500))
	}
	for i := range uint64(499) {
		if v, ok := tab.get(i*0x9E3779B97F4A7C15 + 1); !ok || !sameUpToUnit(v, int64(i), tab.cur.shift) {
			t.Fatalf("key %d: %d %v after growing", i, v, ok)
		}
	}
}

func FuzzTable64MatchesTable(f *testing.F) {
	f.Add(uint8(4), []byte{0, 1, 1, 5, 1, 1, 0, 70, 1, 5, 0, 0})
	f.Fuzz(func(t *testing.T, maxKeys uint8, ops []byte) {
		checkSame(t, int(maxKeys), 1e9, ops)
	})
}

func BenchmarkTable64(b *testing.B) {
	for _, name := range []string{"map", "table64"} {
		b.Run(name, func(b *testing.B) {
			ref := newTable[uint64](65536, 0, 1e9)
			t64 := newTable64(65536, 0, 1e9, nil)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := uint64(i%20000+1) * 0x9E3779B97F4A7C15
				if name == "map" {
					v, _ := ref.get(k)
					ref.put(k, v+1, int64(i))
				} else {
					v, _ := t64.get(k)
					t64.put(k, v+1, int64(i))
				}
			}
		})
	}
}

func TestStateEncoding(t *testing.T) {
	for _, tc := range []struct {
		horizon int64
		shift   uint
	}{{10e6, 1}, {100e6, 4}, {1e9, 7}, {1000e9, 17}} {
		tab := newTable64(100, 0, tc.horizon, nil)
		g := &tab.cur
		if g.shift != tc.shift {
			t.Errorf("horizon %d: unit 2^%d ns, want 2^%d", tc.horizon, g.shift, tc.shift)
		}
		g.start = 5e9
		// Every state within two horizons of the start reads back as
		// itself rounded up to the unit, never earlier.
		for _, d := range []int64{0, 1, 1 << g.shift, tc.horizon, 2*tc.horizon - 1} {
			v := g.start + d
			if got := g.decode(Slot(g.encode(v))); !sameUpToUnit(got, v, g.shift) {
				t.Errorf("horizon %d: state start+%d reads back as start+%d", tc.horizon, d, got-g.start)
			}
		}
		// Outside, it saturates: never a wrapped, earlier time.
		if got := g.decode(Slot(g.encode(g.start + 1000*tc.horizon))); got < g.start+2*tc.horizon-(1<<g.shift) {
			t.Errorf("horizon %d: a state far ahead reads back as start+%d", tc.horizon, got-g.start)
		}
		if got := g.decode(Slot(g.encode(g.start - 7))); got != g.start {
			t.Errorf("horizon %d: a state before the start reads back as start%+d", tc.horizon, got-g.start)
		}
	}
}

// Keys that differ only in the bits a slot does not keep (the low 24)
// share a slot; keys that differ in the kept 40 do not.
func TestTagKeepsTheHigh40Bits(t *testing.T) {
	tab := newTable64(100, 0, 1e9, nil)
	tab.put(0xabcdef0123_000001, 1000, 0)
	if _, ok := tab.get(0xabcdef0123_fffffe); !ok {
		t.Error("a key differing in the low 24 bits was not found")
	}
	if _, ok := tab.get(0xabcdef0124_000001); ok {
		t.Error("a key differing in the kept bits was found")
	}
}

// A key whose high 40 bits are 0 would look like an empty slot: in an
// empty table it must not be found, and once put it must be.
func TestKeyWithZeroTag(t *testing.T) {
	tab := newTable64(100, 0, 1e9, nil)
	if _, ok := tab.get(0x17); ok {
		t.Fatal("a key never put was found in an empty table")
	}
	tab.put(0x42, 1000, 0)
	if v, ok := tab.get(0x42); !ok || !sameUpToUnit(v, 1000, tab.cur.shift) {
		t.Fatalf("key 0x42: %d %v after put", v, ok)
	}
}
