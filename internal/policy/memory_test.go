package policy

import (
	"testing"
	"time"
)

// countingMemory is a Memory that knows which arrays are out.
type countingMemory struct {
	t    *testing.T
	live map[*Slot]int
}

func (m *countingMemory) Slots(n int) []Slot {
	s := make([]Slot, n)
	m.live[&s[0]] = n
	return s
}

// unlimitedEngine has no source or global limit (a flood of distinct
// flows is all relayed) and its tables in a countingMemory.
func unlimitedEngine(t *testing.T) (*Engine, *countingMemory) {
	mem := &countingMemory{t: t, live: map[*Slot]int{}}
	e := newEngine(t, func(c *Config) {
		c.SourceRate, c.SourceBurst, c.GlobalRate, c.GlobalBurst = 1e9, 1e9, 1e9, 1e9
		c.GlobalFrameRate, c.GlobalFrameBurst = 1e12, 1e9
		c.Memory = mem
	})
	return e, mem
}

// slots counts the slots out.
func (m *countingMemory) slots() int {
	n := 0
	for _, k := range m.live {
		n += k
	}
	return n
}

func (m *countingMemory) Free(s []Slot) {
	if len(s) == 0 {
		return
	}
	if _, ok := m.live[&s[0]]; !ok {
		m.t.Fatalf("freeing %d slots not handed out (or twice)", len(s))
	}
	delete(m.live, &s[0])
}

// Tables grown by a flood of distinct flows hold exactly their six arrays
// (three tables, two generations), every replaced array was given back,
// and Close gives back the rest.
func TestEngineMemoryIsGivenBack(t *testing.T) {
	e, mem := unlimitedEngine(t)
	flood(t, e, testView(), 100_000)
	if len(mem.live) != 6 {
		t.Fatalf("%d arrays out after the flood, want 6", len(mem.live))
	}
	e.Close()
	if len(mem.live) != 0 {
		t.Fatalf("%d arrays still out after Close", len(mem.live))
	}
}

// A table keeps its keys for its horizon, no longer: a 100 ms duplicate
// window at 100,000 keys a second holds about two generations of 10,000
// keys, not MaxTracked.
func TestTableHoldsItsHorizonOfKeys(t *testing.T) {
	const horizon = int64(100 * time.Millisecond)
	tab := newTable64(65536, 0, horizon, nil)
	most := 0
	for i := range 100_000 {
		now := int64(i) * 10_000 // 10 µs apart: 100,000 a second
		tab.put(uint64(i)*0x9e3779b97f4a7c15+1, now, now)
		most = max(most, tab.len())
	}
	if most > 20_001 {
		t.Fatalf("the table held %d keys, want at most two 100 ms generations (20,000)", most)
	}
}
