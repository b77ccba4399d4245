package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// checkTrimKeepsLiveState puts, waits and trims as ops say (3 bytes each:
// a key, a time step, put or trim) and fails if a trim or a rotation loses
// a state still live (written less than a horizon ago), or a generation
// outgrows its bound. Few distinct keys, so that no rotation is forced by
// size: only those may drop live state (table64's comment).
func checkTrimKeepsLiveState(t *testing.T, horizon int64, ops []byte) {
	t.Helper()
	tab := newTable64(1<<12, 0, horizon, nil)
	last := map[uint64]int64{}
	now := int64(0)
	for i := 0; i+3 <= len(ops); i += 3 {
		k := uint64(ops[i]%200+1) * 0x9E3779B97F4A7C15
		now += int64(ops[i+1]) * horizon / 32
		if ops[i+2]&1 == 1 {
			tab.put(k, now, now)
			last[k] = now
		} else {
			tab.trim(now)
		}
		for k, v := range last {
			if now-v >= horizon {
				continue // expired: dropping it is allowed
			}
			if got, ok := tab.get(k); !ok || !sameUpToUnit(got, v, tab.cur.shift) {
				t.Fatalf("op %d: live key %#x (put %d ns ago) reads %d %v", i/3, k, now-v, got, ok)
			}
		}
		if tab.cur.n > tab.half || tab.old.n > tab.half {
			t.Fatalf("op %d: generations hold %d and %d keys", i/3, tab.cur.n, tab.old.n)
		}
	}
}

func TestTrimKeepsLiveState(t *testing.T) {
	checkTrimKeepsLiveState(t, 1e8, pseudoRandomOps(3*20000, 7))
}

func FuzzTrimKeepsLiveState(f *testing.F) {
	f.Add([]byte{1, 0, 1, 2, 10, 1, 3, 20, 0, 1, 40, 0, 1, 70, 0})
	f.Fuzz(func(t *testing.T, ops []byte) { checkTrimKeepsLiveState(t, 1e8, ops) })
}

// A burst grows a generation; once the rate falls to a trickle, the next
// rotation gives most of the array back, and a steady rate keeps its size.
func TestGenerationShrinksAfterABurst(t *testing.T) {
	const horizon = int64(100e6)
	tab := newTable64(1<<16, 0, horizon, nil)
	now, k := int64(0), uint64(0)
	put := func(n int, gap int64) {
		for range n {
			k++
			now += gap
			tab.put(k*0x9E3779B97F4A7C15, now, now)
		}
	}
	put(20000, 5000) // 200,000 a second for 100 ms
	grown := tab.slots()
	if grown < slotsFor(20000) {
		t.Fatalf("%d slots after the burst: it did not grow", grown)
	}
	put(100, 5e6) // then 200 a second for half a second: two rotations
	if got := tab.slots(); got > grown/8 {
		t.Fatalf("%d slots after the burst passed, was %d: not given back", got, grown)
	}
	steady := tab.slots()
	put(1000, 5e6) // the same trickle: the same arrays
	if got := tab.slots(); got != steady {
		t.Fatalf("a steady trickle changed the arrays from %d to %d slots", steady, got)
	}
}

// After a flood, Trim with no more messages gives every grown array back
// within two horizons of the longest table, Close takes the rest, and the
// engine still relays and finds duplicates.
func TestTrimGivesBackWhatAFloodGrew(t *testing.T) {
	e, mem := unlimitedEngine(t)
	v := testView()
	first := mem.slots()
	now := flood(t, e, v, 50_000)
	if mem.slots() < 10*first {
		t.Fatalf("%d slots after the flood, %d before: it did not grow", mem.slots(), first)
	}
	if !e.Trim(now) {
		t.Fatal("Trim right after the flood says nothing is left to give back")
	}
	trims := 0
	for more := true; more; trims++ {
		if trims == 100 {
			t.Fatal("Trim still has more to give back after 100 seconds")
		}
		now = now.Add(time.Second)
		more = e.Trim(now)
	}
	if got := mem.slots(); got != first || len(mem.live) != 6 {
		t.Fatalf("%d slots in %d arrays after Trim, want the first %d in 6", got, len(mem.live), first)
	}
	m := msg4(0, 1400)
	if r := e.Decide(now, m, fromRouter, v); r != drop.None {
		t.Fatalf("after Trim: %v", r)
	}
	if r := e.Decide(now.Add(time.Millisecond), m, fromRouter, v); r != drop.Duplicate {
		t.Fatalf("a duplicate after Trim: %v", r)
	}
	e.Close()
	if len(mem.live) != 0 {
		t.Fatalf("%d arrays out after Close", len(mem.live))
	}
}

// flood relays n messages about distinct flows from distinct routers, 10 µs
// apart, and returns the time of the last.
func flood(t *testing.T, e *Engine, v *View, n int) time.Time {
	t.Helper()
	now := t0
	m := msg4(0, 1400)
	for i := range n {
		now = now.Add(10 * time.Microsecond)
		m.Src = netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		m.Inner.Dst = netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)})
		m.Inner.DstPort = uint16(i)
		if r := e.Decide(now, m, fromRouter, v); r != drop.None {
			t.Fatalf("message %d: %v", i, r)
		}
	}
	return now
}

// A generation grown a little (twice its first array, which clear alone
// keeps) still goes back to its first array once everything expired, and
// then Trim has nothing more to do, so the daemon stops calling it.
func TestTrimEndsAtTheFirstArrays(t *testing.T) {
	const horizon = int64(100e6)
	tab := newTable64(1<<16, 64, horizon, nil)
	first := tab.slots()
	for i := range uint64(80) {
		tab.put((i+1)*0x9E3779B97F4A7C15, 0, 0)
	}
	if tab.slots() == first {
		t.Fatal("80 keys did not grow a table sized for 64")
	}
	now, trims := int64(0), 0
	for more := true; more; trims++ {
		if trims == 10 {
			t.Fatalf("Trim still has more to do after 10 horizons, %d slots (first %d)", tab.slots(), first)
		}
		now += horizon
		more = tab.trim(now)
	}
	if tab.slots() != first {
		t.Fatalf("%d slots after Trim, want the first %d", tab.slots(), first)
	}
}
