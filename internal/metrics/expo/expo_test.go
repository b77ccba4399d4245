package expo

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func text(t *testing.T, r *Registry) string {
	t.Helper()
	var b strings.Builder
	if err := WriteText(&b, r.Gather()); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden builds one of every kind, with values that need escaping.
func golden() *Registry {
	r := NewRegistry()
	c := NewCounter(Opts{Name: "t_counter_total", Help: "A counter.\nSecond \\ line."})
	c.Inc()
	c.Add(2.5)
	g := NewGauge(Opts{Name: "t_gauge", Help: "A gauge.", ConstLabels: map[string]string{"z": "1", "a": `q"uo\te` + "\n"}})
	g.Set(-3)
	v := NewCounterVec(Opts{Name: "t_vec_total", Help: "By peer."}, "peer", "family")
	v.WithLabelValues("b", "ipv4").Add(1e6)
	v.WithLabelValues("a", "ipv6").Inc()
	v.WithLabelValues("a", "ipv4")
	h := NewHistogram(Opts{Name: "t_seconds", Help: "Latency."}, []float64{5e-6, 0.001, 1})
	for _, x := range []float64{1e-6, 5e-6, 0.5, 2} {
		h.Observe(x)
	}
	unused := NewGaugeVec(Opts{Name: "t_unused", Help: "No series yet."}, "x")
	fa := NewGaugeFunc(Opts{Name: "t_func", Help: "Read at scrape.", ConstLabels: map[string]string{"reason": "b"}}, func() float64 { return math.Inf(1) })
	fb := NewGaugeFunc(Opts{Name: "t_func", Help: "Read at scrape.", ConstLabels: map[string]string{"reason": "a"}}, func() float64 { return 7 })
	r.MustRegister(v, h, g, c, unused, fa, fb)
	return r
}

const goldenText = `# HELP t_counter_total A counter.\nSecond \\ line.
# TYPE t_counter_total counter
t_counter_total 3.5
# HELP t_func Read at scrape.
# TYPE t_func gauge
t_func{reason="a"} 7
t_func{reason="b"} +Inf
# HELP t_gauge A gauge.
# TYPE t_gauge gauge
t_gauge{a="q\"uo\\te\n",z="1"} -3
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{le="5e-06"} 2
t_seconds_bucket{le="0.001"} 2
t_seconds_bucket{le="1"} 3
t_seconds_bucket{le="+Inf"} 4
t_seconds_sum 2.500006
t_seconds_count 4
# HELP t_vec_total By peer.
# TYPE t_vec_total counter
t_vec_total{family="ipv4",peer="a"} 0
t_vec_total{family="ipv4",peer="b"} 1e+06
t_vec_total{family="ipv6",peer="a"} 1
`

func TestGoldenText(t *testing.T) {
	if got := text(t, golden()); got != goldenText {
		t.Fatalf("got:\n%s\nwant:\n%s", got, goldenText)
	}
}

func TestHistogramLabelsAndLeLast(t *testing.T) {
	r := NewRegistry()
	h := NewHistogram(Opts{Name: "h", Help: "h", ConstLabels: map[string]string{"a": "x"}}, []float64{1, math.Inf(1)})
	h.Observe(1)
	r.MustRegister(h)
	want := "# HELP h h\n# TYPE h histogram\nh_bucket{a=\"x\",le=\"1\"} 1\nh_bucket{a=\"x\",le=\"+Inf\"} 1\nh_sum{a=\"x\"} 1\nh_count{a=\"x\"} 1\n"
	if got := text(t, r); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRegisterRefuses(t *testing.T) {
	r := NewRegistry()
	r.MustRegister(NewCounter(Opts{Name: "a_total", Help: "a"}))
	for name, c := range map[string]Collector{
		"same series":      NewCounter(Opts{Name: "a_total", Help: "a"}),
		"other type":       NewGauge(Opts{Name: "a_total", Help: "a", ConstLabels: map[string]string{"x": "1"}}),
		"other help":       NewCounter(Opts{Name: "a_total", Help: "b", ConstLabels: map[string]string{"x": "1"}}),
		"bad name":         NewCounter(Opts{Name: "1a", Help: "a"}),
		"bad label":        NewCounterVec(Opts{Name: "b_total", Help: "b"}, "a-b"),
		"reserved label":   NewCounterVec(Opts{Name: "b_total", Help: "b"}, "__x"),
		"repeated label":   NewCounterVec(Opts{Name: "b_total", Help: "b", ConstLabels: map[string]string{"x": "1"}}, "x"),
		"le of histogram":  NewHistogram(Opts{Name: "h", Help: "h", ConstLabels: map[string]string{"le": "1"}}, nil),
		"invalid UTF-8":    NewCounter(Opts{Name: "c_total", Help: "\xff"}),
		"colon in a label": NewCounterVec(Opts{Name: "b_total", Help: "b"}, "a:b"),
	} {
		if err := r.Register(c); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	err := r.Register(NewCounter(Opts{Name: "a_total", Help: "a"}))
	if !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestInvalidUTF8LabelValueIsReplaced(t *testing.T) {
	r := NewRegistry()
	v := NewGaugeVec(Opts{Name: "g", Help: "g"}, "x")
	v.WithLabelValues("a\xffb").Set(1)
	r.MustRegister(v)
	if got := text(t, r); !strings.Contains(got, "g{x=\"a\uFFFDb\"} 1\n") {
		t.Fatal(got)
	}
}

func TestWrongLabelCountPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewCounterVec(Opts{Name: "v", Help: "v"}, "a", "b").WithLabelValues("x")
}

func TestCounterRefusesToDecrease(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewCounter(Opts{Name: "c", Help: "c"}).Add(-1)
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c := NewCounter(Opts{Name: "c", Help: "c"})
	g := NewGauge(Opts{Name: "g", Help: "g"})
	h := NewHistogram(Opts{Name: "h", Help: "h"}, []float64{1, 2, 5})
	v := NewCounterVec(Opts{Name: "v", Help: "v"}, "peer")
	v.WithLabelValues("node-1")
	peer := "node-1"
	for name, f := range map[string]func(){
		"Counter.Inc":               c.Inc,
		"Counter.Add":               func() { c.Add(3) },
		"Counter.Add fraction":      func() { c.Add(0.5) },
		"Gauge.Set":                 func() { g.Set(2) },
		"Gauge.Add":                 func() { g.Add(1) },
		"Histogram.Observe":         func() { h.Observe(1.5) },
		"Vec.WithLabelValues().Inc": func() { v.WithLabelValues(peer).Inc() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

func TestConcurrentUpdatesAreCounted(t *testing.T) {
	c := NewCounter(Opts{Name: "c", Help: "c"})
	h := NewHistogram(Opts{Name: "h", Help: "h"}, []float64{1})
	g := NewGauge(Opts{Name: "g", Help: "g"})
	v := NewCounterVec(Opts{Name: "v", Help: "v"}, "k")
	r := NewRegistry()
	r.MustRegister(c, h, g, v)
	const workers, each = 4, 10000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				c.Inc()
				c.Add(0.5)
				h.Observe(float64(i % 2 * 2))
				g.Add(1)
				v.WithLabelValues(string(rune('a' + w))).Inc()
				if i%1000 == 0 {
					r.Gather()
				}
			}
		})
	}
	wg.Wait()
	if c.Value() != workers*each*1.5 || g.Value() != workers*each || v.Len() != workers {
		t.Fatalf("counter %v gauge %v series %d", c.Value(), g.Value(), v.Len())
	}
	hv := h.Value()
	if hv.Count() != workers*each || hv.Cumulative[0] != workers*each/2 || hv.Sum != workers*each {
		t.Fatalf("histogram %+v", hv)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(golden().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != ContentType || string(body) != goldenText {
		t.Fatalf("%s\n%s", resp.Header.Get("Content-Type"), body)
	}
	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewCounter(Opts{Name: "c", Help: "c"})
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewHistogram(Opts{Name: "h", Help: "h"}, []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3})
	b.ReportAllocs()
	for b.Loop() {
		h.Observe(120e-6)
	}
}

func BenchmarkVecLookup(b *testing.B) {
	v := NewCounterVec(Opts{Name: "v", Help: "v"}, "peer")
	v.WithLabelValues("node-1")
	b.ReportAllocs()
	for b.Loop() {
		v.WithLabelValues("node-1").Inc()
	}
}

func BenchmarkGatherAndWrite(b *testing.B) {
	r := golden()
	b.ReportAllocs()
	var sb strings.Builder
	for b.Loop() {
		sb.Reset()
		_ = WriteText(&sb, r.Gather())
	}
}

func TestValue(t *testing.T) {
	r := golden()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"t_counter_total", nil, 3.5, true},
		{"t_vec_total", []string{"peer", "b"}, 1e6, true},
		{"t_vec_total", []string{"peer", "a", "family", "ipv6"}, 1, true},
		{"t_vec_total", []string{"peer", "c"}, 0, false},
		{"t_missing", nil, 0, false},
	} {
		if got, ok := r.Value(c.name, c.labels...); got != c.want || ok != c.ok {
			t.Errorf("%s%v = %v, %v; want %v, %v", c.name, c.labels, got, ok, c.want, c.ok)
		}
	}
}
