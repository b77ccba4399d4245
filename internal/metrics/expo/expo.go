// Package expo is a small Prometheus exposition: counters, gauges,
// histograms, labelled vectors and func-backed values, a registry, and the
// text format 0.0.4 over HTTP. It replaces client_golang in the daemon, whose
// protobuf model and procfs kept about 3 MB more resident (docs/benchmarks.md).
// Updating a value is one or a few atomic operations and never allocates.
package expo

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Type is a metric family's type, as written on its # TYPE line.
type Type uint8

// The family types this package writes.
const (
	CounterType Type = iota
	GaugeType
	HistogramType
)

func (t Type) String() string {
	switch t {
	case CounterType:
		return "counter"
	case GaugeType:
		return "gauge"
	case HistogramType:
		return "histogram"
	}
	return "untyped"
}

// Label is one name="value" pair of a series.
type Label struct{ Name, Value string }

// Opts names a family. Name is the full metric name (namespace included, so
// that it can be found with grep); ConstLabels label every series of it.
type Opts struct {
	Name, Help  string
	ConstLabels map[string]string
}

// desc is what the registry needs to know of a collector's family.
type desc struct {
	name, help string
	typ        Type
	labelNames []string // variable labels of a vector, in declared order
	constant   []Label  // sorted by name
	vector     bool
}

// Collector is anything the registry can hold: the types of this package.
type Collector interface {
	describe() *desc
	// collect appends the collector's series to dst.
	collect(dst []Series) []Series
}

func newDesc(o Opts, typ Type, labelNames []string, vector bool) *desc {
	d := &desc{name: o.Name, help: o.Help, typ: typ, labelNames: labelNames, vector: vector}
	for _, k := range slices.Sorted(maps.Keys(o.ConstLabels)) {
		d.constant = append(d.constant, Label{k, strings.ToValidUTF8(o.ConstLabels[k], "\uFFFD")})
	}
	return d
}

// validate checks the names the text format allows.
func (d *desc) validate() error {
	if !validName(d.name, true) {
		return fmt.Errorf("expo: invalid metric name %q", d.name)
	}
	if !utf8.ValidString(d.help) {
		return fmt.Errorf("expo: %s: help is not UTF-8", d.name)
	}
	seen := map[string]bool{}
	names := slices.Clone(d.labelNames)
	for _, l := range d.constant {
		names = append(names, l.Name)
	}
	for _, n := range names {
		if !validName(n, false) || strings.HasPrefix(n, "__") || (d.typ == HistogramType && n == "le") || seen[n] {
			return fmt.Errorf("expo: %s: invalid or repeated label name %q", d.name, n)
		}
		seen[n] = true
	}
	return nil
}

// validName: [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, without ':' for labels.
func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (c == ':' && metric) || (c >= '0' && c <= '9' && i > 0)
		if !ok {
			return false
		}
	}
	return true
}

// seriesLabels merges constant and variable labels, sorted by name: the
// order they are written in.
func seriesLabels(constant []Label, names, values []string) []Label {
	out := slices.Clone(constant)
	for i, n := range names {
		out = append(out, Label{n, strings.ToValidUTF8(values[i], "\uFFFD")})
	}
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}
