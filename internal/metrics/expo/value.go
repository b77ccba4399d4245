package expo

import (
	"math"
	"sync/atomic"
)

// Counter only goes up. Whole increments go to an integer, so that Inc and
// Add of a count are one atomic add; fractions go to a float beside it.
type Counter struct {
	whole atomic.Uint64
	frac  atomic.Uint64 // float64 bits
	d     *desc
	// labels of this series, sorted; nil for a vector's children until created.
	labels []Label
}

// NewCounter returns an unregistered counter.
func NewCounter(o Opts) *Counter {
	d := newDesc(o, CounterType, nil, false)
	return &Counter{d: d, labels: d.constant}
}

// Inc adds 1.
func (c *Counter) Inc() { c.whole.Add(1) }

// Add adds v, which must not be negative (a counter never goes down).
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("expo: counter cannot decrease")
	}
	if v < 1<<63 {
		if u := uint64(v); float64(u) == v {
			c.whole.Add(u)
			return
		}
	}
	addFloat(&c.frac, v)
}

// Value is the counter's current value.
func (c *Counter) Value() float64 {
	return float64(c.whole.Load()) + math.Float64frombits(c.frac.Load())
}

func (c *Counter) describe() *desc { return c.d }

func (c *Counter) collect(dst []Series) []Series {
	return append(dst, Series{Labels: c.labels, Value: c.Value()})
}

// Gauge goes up and down.
type Gauge struct {
	bits   atomic.Uint64 // float64
	d      *desc
	labels []Label
}

// NewGauge returns an unregistered gauge at 0.
func NewGauge(o Opts) *Gauge {
	d := newDesc(o, GaugeType, nil, false)
	return &Gauge{d: d, labels: d.constant}
}

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v (negative to subtract).
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.Add(-1) }

// Value is the gauge's current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func (g *Gauge) describe() *desc { return g.d }

func (g *Gauge) collect(dst []Series) []Series {
	return append(dst, Series{Labels: g.labels, Value: g.Value()})
}

func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Func is a counter or gauge whose value is read from fn at each scrape:
// for values the code keeps anyway (in atomics, or the kernel's).
type Func struct {
	d  *desc
	fn func() float64
}

// NewCounterFunc returns a counter read from fn, which must not go down.
func NewCounterFunc(o Opts, fn func() float64) *Func {
	return &Func{d: newDesc(o, CounterType, nil, false), fn: fn}
}

// NewGaugeFunc returns a gauge read from fn.
func NewGaugeFunc(o Opts, fn func() float64) *Func {
	return &Func{d: newDesc(o, GaugeType, nil, false), fn: fn}
}

func (f *Func) describe() *desc { return f.d }

func (f *Func) collect(dst []Series) []Series {
	return append(dst, Series{Labels: f.d.constant, Value: f.fn()})
}
