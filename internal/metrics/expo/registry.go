package expo

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrAlreadyRegistered is returned for a second collector of a series the
// registry already has.
var ErrAlreadyRegistered = errors.New("expo: already registered")

// Registry holds collectors and reads them at each scrape. Collectors with
// one name form one family; several may share it only as single series with
// different constant labels (as the kernel filter's drop counters do).
type Registry struct {
	mu   sync.Mutex
	fams map[string]*family
}

type family struct {
	d  *desc
	cs []Collector
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{fams: map[string]*family{}} }

// Register adds c, or says why not.
func (r *Registry) Register(c Collector) error {
	d := c.describe()
	if err := d.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fams[d.name]
	if f == nil {
		r.fams[d.name] = &family{d: d, cs: []Collector{c}}
		return nil
	}
	if f.d.typ != d.typ || f.d.help != d.help {
		return fmt.Errorf("expo: %s registered before as a %s with other help", d.name, f.d.typ)
	}
	for _, o := range f.cs {
		od := o.describe()
		if d.vector || od.vector || slices.Equal(od.constant, d.constant) {
			return fmt.Errorf("%w: %s", ErrAlreadyRegistered, d.name)
		}
	}
	f.cs = append(f.cs, c)
	return nil
}

// MustRegister registers each collector and panics on the first error: for
// the daemon's fixed set, where an error is a programming mistake.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Family is one metric family at a scrape.
type Family struct {
	Name, Help string
	Type       Type
	Series     []Series // sorted by label values
}

// Series is one labelled value of a family.
type Series struct {
	Labels []Label // sorted by name; shared, do not modify
	Value  float64 // counters and gauges
	Hist   *HistogramValue
}

// Label returns the value of the label name, "" if none.
func (s Series) Label(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Gather reads every collector: families sorted by name, each family's
// series by label values; families without series (vectors nobody used
// yet) are left out.
func (r *Registry) Gather() []Family {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.fams))
	for _, f := range r.fams {
		fams = append(fams, &family{d: f.d, cs: slices.Clone(f.cs)})
	}
	r.mu.Unlock()
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.d.name, b.d.name) })
	out := make([]Family, 0, len(fams))
	for _, f := range fams {
		var ss []Series
		for _, c := range f.cs {
			ss = c.collect(ss)
		}
		if len(ss) == 0 {
			continue
		}
		slices.SortFunc(ss, func(a, b Series) int { return compareLabels(a.Labels, b.Labels) })
		out = append(out, Family{Name: f.d.name, Help: f.d.help, Type: f.d.typ, Series: ss})
	}
	return out
}

func compareLabels(a, b []Label) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].Name, b[i].Name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// Value reads one counter or gauge series of family name: the first whose
// labels include every name, value pair given. For tests and status pages;
// it gathers the whole registry.
func (r *Registry) Value(name string, labelPairs ...string) (float64, bool) {
	for _, f := range r.Gather() {
		if f.Name != name {
			continue
		}
	series:
		for _, s := range f.Series {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if s.Label(labelPairs[i]) != labelPairs[i+1] {
					continue series
				}
			}
			return s.Value, true
		}
	}
	return 0, false
}
