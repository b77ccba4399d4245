package expo

import (
	"math"
	"slices"
	"sort"
	"sync/atomic"
)

// Histogram counts observations in buckets of fixed upper bounds.
type Histogram struct {
	bounds []float64       // strictly increasing, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
	d      *desc
	labels []Label
}

// HistogramValue is a histogram's state at a scrape.
type HistogramValue struct {
	Bounds []float64 // upper bounds, without +Inf
	// Cumulative[i] counts observations <= Bounds[i]; the extra last one
	// (le="+Inf") counts all of them, and is the _count.
	Cumulative []uint64
	Sum        float64
}

// Count is the number of observations.
func (h HistogramValue) Count() uint64 { return h.Cumulative[len(h.Cumulative)-1] }

// NewHistogram returns an unregistered histogram with the given upper bounds
// (sorted, strictly increasing; a last +Inf is implied and may be left out).
func NewHistogram(o Opts, buckets []float64) *Histogram {
	d := newDesc(o, HistogramType, nil, false)
	return newHistogram(d, d.constant, buckets)
}

func newHistogram(d *desc, labels []Label, buckets []float64) *Histogram {
	b := slices.Clone(buckets)
	if n := len(b); n > 0 && math.IsInf(b[n-1], 1) {
		b = b[:n-1]
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			panic("expo: " + d.name + ": histogram buckets must increase")
		}
	}
	return &Histogram{bounds: b, counts: make([]atomic.Uint64, len(b)+1), d: d, labels: labels}
}

// Observe adds v: one bucket increment and the sum.
func (h *Histogram) Observe(v float64) {
	h.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
	addFloat(&h.sum, v)
}

// Value reads the histogram. Under concurrent Observe the sum may lag the
// counts by the observations in flight; the buckets and count agree.
func (h *Histogram) Value() HistogramValue {
	v := HistogramValue{Bounds: h.bounds, Cumulative: make([]uint64, len(h.counts))}
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		v.Cumulative[i] = n
	}
	v.Sum = math.Float64frombits(h.sum.Load())
	return v
}

func (h *Histogram) describe() *desc { return h.d }

func (h *Histogram) collect(dst []Series) []Series {
	v := h.Value()
	return append(dst, Series{Labels: h.labels, Hist: &v})
}
