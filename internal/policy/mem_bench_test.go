package policy

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// BenchmarkFullTablesHeap reports the heap the three tables hold when a
// sweep of distinct flows (the rate benchmark's raised rows) has filled
// them to MaxTracked: the bound of the policy's memory.
func BenchmarkFullTablesHeap(b *testing.B) {
	v := testView()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e := newEngine(b, func(c *Config) {
			c.SourceRate, c.SourceBurst, c.GlobalRate, c.GlobalBurst = 1e9, 1e9, 1e9, 1e9
			c.GlobalFrameRate, c.GlobalFrameBurst = 1e12, 1e9
		})
		now := t0
		m := msg4(0, 1400)
		for i := range 4 * DefaultConfig().MaxTracked {
			now = now.Add(time.Microsecond)
			m.Src = netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
			m.Inner.Dst = netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)})
			m.Inner.DstPort = uint16(i)
			if r := e.Decide(now, m, fromRouter, v); r != drop.None {
				b.Fatalf("message %d: %v", i, r)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		runtime.KeepAlive(e)
	}
}
