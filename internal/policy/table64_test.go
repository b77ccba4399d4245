package policy

import (
	"encoding/binary"
	"testing"
)

// checkSame runs ops on table64 and on the map-based table it replaces and
// fails at the first get that answers differently. Each op is 3 bytes: a
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
		if rv != gv || rok != gok {
			t.Fatalf("op %d key %#x: table64 %d %v, map table %d %v", i/3, k, gv, gok, rv, rok)
		}
		if got.cur.n > got.half || got.old.n > got.half {
			t.Fatalf("op %d: generations hold %d and %d keys, at most %d each", i/3, got.cur.n, got.old.n, got.half)
		}
	}
}

func TestTable64MatchesTable(t *testing.T) {
	ops := make([]byte, 3*200000)
	x := uint64(1)
	for i := 0; i < len(ops); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(ops[i:], x)
	}
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
		if v, ok := tab.get(i*0x9E3779B97F4A7C15 + 1); !ok || v != int64(i) {
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
