package daemon

import (
	"github.com/go-pmtud/go-pmtud/internal/offheap"
	"github.com/go-pmtud/go-pmtud/internal/policy"
)

// offheapSlots maps the policy's tables outside the Go heap: a flood that
// fills them then neither doubles the heap the collector lets grow nor
// leaves the arrays it replaced waiting as garbage (docs/benchmarks.md).
// Bounded by MaxTracked: at most 4.2 MB, none of it counted by GOMEMLIMIT.
type offheapSlots struct{}

func (offheapSlots) Slots(n int) []policy.Slot {
	s, err := offheap.Make[policy.Slot](n)
	if err != nil {
		// As the runtime does when the heap cannot grow: there is no
		// relaying on without the tables.
		panic(err)
	}
	return s
}

func (offheapSlots) Free(s []policy.Slot) { _ = offheap.Free(s) }
