// Package memlimit sets the Go runtime's memory knobs: a soft memory limit
// from the container's cgroup memory limit, so that the garbage collector
// works harder before the kernel's OOM killer would end the daemon, instead
// of letting the heap double between collections whatever the limit; and a
// collection target below the default (GCPercent). An explicit GOMEMLIMIT
// or GOGC always wins.
package memlimit

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the cgroup limit given to the runtime: the rest is for what
// the runtime does not count (the binary's pages, kernel socket buffers are
// charged to the cgroup too).
const Fraction = 0.9

// noLimit is above any real limit: cgroup v1 reports "unlimited" as a page
// rounded 2^63-1.
const noLimit = 1 << 62

// CgroupLimit returns the memory limit of this process's cgroup, read from
// fsys rooted at "/" (proc/self/cgroup, sys/fs/cgroup/...); false if there
// is none or it cannot be read. cgroup v2 first, then v1.
func CgroupLimit(fsys fs.FS) (int64, bool) {
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	v2, v1 := CgroupPaths(data)
	var candidates []string
	if v2 != "" {
		// Inside a cgroup namespace the own cgroup is the root of the mount.
		candidates = append(candidates, path.Join("sys/fs/cgroup", v2, "memory.max"), "sys/fs/cgroup/memory.max")
	}
	if v1 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes")
	}
	for _, name := range candidates {
		if b, err := fs.ReadFile(fsys, name); err == nil {
			return ParseLimit(b)
		}
	}
	return 0, false
}

// CgroupPaths returns this process's cgroup v2 path ("0::/path") and its v1
// memory controller path ("N:memory:/path" or a list holding memory) from
// the contents of /proc/self/cgroup; "" for one not found.
func CgroupPaths(procSelfCgroup []byte) (v2, v1 string) {
	s := bufio.NewScanner(bytes.NewReader(procSelfCgroup))
	for s.Scan() {
		id, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		ctrls, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(p, "/") {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			v2 = p
		case containsField(ctrls, "memory"):
			v1 = p
		}
	}
	return v2, v1
}

func containsField(list, f string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == f {
			return true
		}
	}
	return false
}

// ParseLimit reads a memory.max or memory.limit_in_bytes file: a byte count,
// or "max" (v2) or a huge number (v1) for none.
func ParseLimit(b []byte) (int64, bool) {
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= noLimit {
		return 0, false
	}
	return n, true
}

// Soft returns the soft limit for a cgroup limit.
func Soft(cgroup int64) int64 { return int64(float64(cgroup) * Fraction) }

// Apply sets the collection target to GCPercent unless GOGC is set, and
// the runtime's soft memory limit to Soft of the cgroup limit found in
// fsys unless GOMEMLIMIT is set; it returns the limit set, or 0.
func Apply(getenv func(string) string, fsys fs.FS) int64 {
	applyGCPercent(getenv)
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	lim, ok := CgroupLimit(fsys)
	if !ok {
		return 0
	}
	soft := Soft(lim)
	debug.SetMemoryLimit(soft)
	return soft
}

// GCPercent is the collection target when GOGC is not set: half the
// default. The daemon's live heap is small (about 2 MB) and grows slowly
// (scrapes, probes, watch events; the relay path allocates nothing), so the
// default let it reach the runtime's 4 MB floor and stay there, 2 MB of
// garbage resident for good (scraped every 2 s: anon 6.3 MB after 3 minutes
// against 4.0-4.2 with 50; docs/benchmarks.md). Collecting twice as often
// costs little CPU at that rate, and the floor halves with the target.
const GCPercent = 50

// applyGCPercent sets GCPercent unless GOGC is set.
func applyGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
