package process

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

const statLine = "4242 (go-pmtud) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 9 0 987654 1300000000 3072 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	s, err := ParseStat([]byte(statLine))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{UTime: 150, STime: 25, StartTime: 987654, VSize: 1300000000, RSSPages: 3072}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	// A command name with spaces and parentheses.
	odd := strings.Replace(statLine, "(go-pmtud)", "(a) b (c)", 1)
	if s2, err := ParseStat([]byte(odd)); err != nil || s2 != want {
		t.Fatalf("odd name: %+v %v", s2, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", strings.Replace(statLine, " 150 ", " x ", 1)} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseBootTime(t *testing.T) {
	in := "cpu  1 2 3\nintr 5\nctxt 9\nbtime 1764547200\nprocesses 7\n"
	if b, err := ParseBootTime([]byte(in)); err != nil || b != 1764547200 {
		t.Fatalf("%d %v", b, err)
	}
	if _, err := ParseBootTime([]byte("cpu 1\n")); err == nil {
		t.Fatal("no btime parsed")
	}
}

func TestRegisterExportsStartTimeOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	reg := expo.NewRegistry()
	Register(reg)
	got := map[string]float64{}
	for _, f := range reg.Gather() {
		got[f.Name] = f.Series[0].Value
	}
	start := got["process_start_time_seconds"]
	if now := float64(time.Now().Unix()); start < now-3600 || start > now+1 {
		t.Errorf("process_start_time_seconds %v, now %v", start, now)
	}
	for _, n := range []string{"process_resident_memory_bytes", "process_open_fds", "process_max_fds", "go_goroutines", "go_threads", "go_info"} {
		if got[n] <= 0 {
			t.Errorf("%s = %v", n, got[n])
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 ()) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil && s != (Stat{}) {
			t.Fatal("values with an error")
		}
	})
}

func FuzzParseBootTime(f *testing.F) {
	f.Add([]byte("cpu 1\nbtime 17\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseBootTime(b) })
}
