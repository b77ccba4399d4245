package policy

import (
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	b, err := NewBuckets[string](10, 3, 20, 5, 100)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	count := func(key string, at time.Time, n int) (ok, perKey, all int) {
		for range n {
			switch b.Take(key, at) {
			case Allowed:
				ok++
			case LimitedKey:
				perKey++
			case LimitedOverall:
				all++
			}
		}
		return
	}
	if ok, per, all := count("a", t0, 10); ok != 3 || per != 7 || all != 0 {
		t.Fatalf("a at t0: %d allowed, %d per-key, %d overall; want 3, 7, 0", ok, per, all)
	}
	// b has its own bucket, but the overall one (5) has 2 left.
	if ok, per, all := count("b", t0, 10); ok != 2 || per != 0 || all != 8 {
		t.Fatalf("b at t0: %d allowed, %d per-key, %d overall; want 2, 0, 8", ok, per, all)
	}
	// 100 ms later: one more token for a (10/s), two overall (20/s).
	if ok, _, _ := count("a", t0.Add(100*time.Millisecond), 10); ok != 1 {
		t.Fatalf("a after 100 ms: %d allowed, want 1", ok)
	}
	if _, err := NewBuckets[string](0, 1, 1, 1, 2); err == nil {
		t.Fatal("zero rate accepted")
	}
}

func TestBucketsDoNotAllocate(t *testing.T) {
	b, _ := NewBuckets[string](1e9, 1, 1e9, 1, 100)
	now := time.Unix(0, 0)
	b.Take("peer-1", now)
	n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		b.Take("peer-1", now)
	})
	if n != 0 {
		t.Fatalf("%v allocations per Take", n)
	}
}
