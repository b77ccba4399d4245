// Package process exports the standard process_* and go_* metrics that
// client_golang's default collectors did, under the same names and help:
// process_start_time_seconds is what the restart alert watches. Only the
// cheap ones are kept: not go_memstats_* (runtime/metrics' package
// initialisation alone costs 15 kB of heap), go_gc_*, go_sched_*,
// process_network_* (the namespace's, not the process's) or promhttp_*.
package process

import (
	"os"
	"runtime"
	"syscall"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// Register adds the process and Go runtime metrics to reg.
func Register(reg *expo.Registry) {
	start := startTime()
	stat := func(get func(Stat) float64) func() float64 {
		return func() float64 {
			s, err := ReadStat()
			if err != nil {
				return 0
			}
			return get(s)
		}
	}
	page := float64(os.Getpagesize())
	reg.MustRegister(
		expo.NewCounterFunc(expo.Opts{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds."},
			stat(func(s Stat) float64 { return float64(s.UTime+s.STime) / userHZ })),
		expo.NewGaugeFunc(expo.Opts{Name: "process_resident_memory_bytes", Help: "Resident memory size in bytes."},
			stat(func(s Stat) float64 { return float64(s.RSSPages) * page })),
		expo.NewGaugeFunc(expo.Opts{Name: "process_virtual_memory_bytes", Help: "Virtual memory size in bytes."},
			stat(func(s Stat) float64 { return float64(s.VSize) })),
		expo.NewGaugeFunc(expo.Opts{Name: "process_start_time_seconds", Help: "Start time of the process since unix epoch in seconds."},
			func() float64 { return start }),
		expo.NewGaugeFunc(expo.Opts{Name: "process_open_fds", Help: "Number of open file descriptors."}, openFDs),
		expo.NewGaugeFunc(expo.Opts{Name: "process_max_fds", Help: "Maximum number of open file descriptors."},
			func() float64 { return rlimit(syscall.RLIMIT_NOFILE) }),
		expo.NewGaugeFunc(expo.Opts{Name: "process_virtual_memory_max_bytes", Help: "Maximum amount of virtual memory available in bytes."},
			func() float64 { return rlimit(syscall.RLIMIT_AS) }),
		expo.NewGaugeFunc(expo.Opts{Name: "go_goroutines", Help: "Number of goroutines that currently exist."},
			func() float64 { return float64(runtime.NumGoroutine()) }),
		expo.NewGaugeFunc(expo.Opts{Name: "go_threads", Help: "Number of OS threads created."},
			func() float64 { n, _ := runtime.ThreadCreateProfile(nil); return float64(n) }),
		expo.NewGaugeFunc(expo.Opts{Name: "go_info", Help: "Information about the Go environment.",
			ConstLabels: map[string]string{"version": runtime.Version()}}, func() float64 { return 1 }),
	)
}

// startTime is when the process started, from the kernel's clock ticks
// since boot: the same value on every scrape and across exporter versions.
func startTime() float64 {
	s, err := ReadStat()
	if err != nil {
		return 0
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	boot, err := ParseBootTime(b)
	if err != nil {
		return 0
	}
	return float64(boot) + float64(s.StartTime)/userHZ
}

func openFDs() float64 {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0
	}
	return float64(len(names)) // the directory's own descriptor included, as procfs counted
}

func rlimit(resource int) float64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(resource, &l); err != nil {
		return 0
	}
	return float64(l.Cur)
}
