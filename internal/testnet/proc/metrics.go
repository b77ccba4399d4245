package proc

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape: sample name with labels as written (e.g.
// `gopmtud_frames_sent_total{transport="l2"}`) to value.
type Metrics map[string]float64

// Sum adds every sample of the metric name, whatever its labels.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// ParseMetrics reads the Prometheus text format, enough for counters and
// gauges: "name{labels} value [timestamp]". Comments and lines it cannot
// read are skipped.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the label braces (which may hold spaces).
		name, rest := line, ""
		if end := strings.LastIndexByte(line, '}'); end >= 0 {
			name, rest = line[:end+1], line[end+1:]
		} else if sp := strings.IndexByte(line, ' '); sp > 0 {
			name, rest = line[:sp], line[sp:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[name] = v
	}
	return m, sc.Err()
}

// Decided reports whether the daemon has decided every packet NFLOG
// delivered to it: each one is relayed or dropped with a reason, so
// received <= relayed + dropped once nothing is in flight inside it.
func (m Metrics) Decided() bool {
	done := m.Sum("gopmtud_messages_relayed_total") + m.Sum("gopmtud_packets_dropped_total")
	return m["gopmtud_packets_received_total"] <= done
}

// Settle scrapes until every process has decided all it received and its
// received count held still between two scrapes interval apart, or until
// timeout. It returns the last scrapes and whether they settled: a
// positive signal that nothing is in flight, instead of a sleep.
func Settle(scrape []func() (Metrics, error), interval, timeout time.Duration) ([]Metrics, bool) {
	last := make([]Metrics, len(scrape))
	prev := make([]float64, len(scrape))
	for i := range prev {
		prev[i] = -1
	}
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for i, s := range scrape {
			m, err := s()
			if err != nil {
				return last, false
			}
			last[i] = m
			r := m["gopmtud_packets_received_total"]
			ok = ok && r == prev[i] && m.Decided()
			prev[i] = r
		}
		if ok || time.Now().After(deadline) {
			return last, ok
		}
		time.Sleep(interval)
	}
}
