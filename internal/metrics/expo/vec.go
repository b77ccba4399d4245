package expo

import (
	"fmt"
	"strings"
	"sync"
)

// Vec is a family of series of one type told apart by label values. Its
// label sets must be bounded (enums, node names): every child lives as
// long as the vector. A child, once looked up, is updated without the map.
type Vec[T any] struct {
	d     *desc
	newT  func(labels []Label) *T
	read  func(*T, []Series) []Series
	mu    sync.RWMutex
	child map[string]*T
}

// CounterVec is a vector of counters.
type CounterVec = Vec[Counter]

// GaugeVec is a vector of gauges.
type GaugeVec = Vec[Gauge]

// NewCounterVec returns an unregistered vector of counters.
func NewCounterVec(o Opts, labelNames ...string) *CounterVec {
	d := newDesc(o, CounterType, labelNames, true)
	return newVec(d, func(l []Label) *Counter { return &Counter{d: d, labels: l} }, (*Counter).collect)
}

// NewGaugeVec returns an unregistered vector of gauges.
func NewGaugeVec(o Opts, labelNames ...string) *GaugeVec {
	d := newDesc(o, GaugeType, labelNames, true)
	return newVec(d, func(l []Label) *Gauge { return &Gauge{d: d, labels: l} }, (*Gauge).collect)
}

func newVec[T any](d *desc, newT func([]Label) *T, read func(*T, []Series) []Series) *Vec[T] {
	return &Vec[T]{d: d, newT: newT, read: read, child: map[string]*T{}}
}

// WithLabelValues returns the series of these label values (in the order
// of the label names), creating it at zero. Looking up an existing series
// with one label does not allocate; keep the result for the hot path.
func (v *Vec[T]) WithLabelValues(values ...string) *T {
	if len(values) != len(v.d.labelNames) {
		panic(fmt.Sprintf("expo: %s: %d label values for %d labels", v.d.name, len(values), len(v.d.labelNames)))
	}
	var key string
	if len(values) == 1 {
		key = values[0]
	} else {
		key = strings.Join(values, "\xff")
	}
	v.mu.RLock()
	c := v.child[key]
	v.mu.RUnlock()
	if c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.child[key]; c == nil {
		c = v.newT(seriesLabels(v.d.constant, v.d.labelNames, values))
		v.child[strings.Clone(key)] = c
	}
	return c
}

// Len is the number of series created.
func (v *Vec[T]) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.child)
}

func (v *Vec[T]) describe() *desc { return v.d }

func (v *Vec[T]) collect(dst []Series) []Series {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, c := range v.child {
		dst = v.read(c, dst)
	}
	return dst
}
