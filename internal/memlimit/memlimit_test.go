package memlimit

import (
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestCgroupPaths(t *testing.T) {
	for _, tc := range []struct{ in, v2, v1 string }{
		{"0::/kubepods/burstable/pod1/c1\n", "/kubepods/burstable/pod1/c1", ""},
		{"0::/\n", "/", ""},
		{"12:cpu,cpuacct:/a\n11:memory:/kubepods/pod2\n0::/\n", "/", "/kubepods/pod2"},
		{"5:blkio,memory:/x\n", "", "/x"},
		{"garbage\n1:memoryless:/y\n", "", ""},
	} {
		v2, v1 := CgroupPaths([]byte(tc.in))
		if v2 != tc.v2 || v1 != tc.v1 {
			t.Errorf("%q: got %q %q, want %q %q", tc.in, v2, v1, tc.v2, tc.v1)
		}
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]int64{"67108864\n": 64 << 20, "max\n": 0, "9223372036854771712": 0, "0": 0, "-1": 0, "": 0} {
		got, ok := ParseLimit([]byte(in))
		if got != want || ok != (want != 0) {
			t.Errorf("%q: got %d %v, want %d", in, got, ok, want)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	v2 := fstest.MapFS{
		"proc/self/cgroup":                          {Data: []byte("0::/kubepods/pod1/c1\n")},
		"sys/fs/cgroup/kubepods/pod1/c1/memory.max": {Data: []byte("134217728\n")},
	}
	if n, ok := CgroupLimit(v2); !ok || n != 128<<20 {
		t.Errorf("v2: %d %v", n, ok)
	}
	ns := fstest.MapFS{ // cgroup namespace: our cgroup is the mount's root
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
	}
	if _, ok := CgroupLimit(ns); ok {
		t.Error("unlimited v2 cgroup gave a limit")
	}
	v1 := fstest.MapFS{
		"proc/self/cgroup":                           {Data: []byte("4:memory:/docker/abc\n")},
		"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("33554432\n")},
	}
	if n, ok := CgroupLimit(v1); !ok || n != 32<<20 {
		t.Errorf("v1 in a namespace: %d %v", n, ok)
	}
	if _, ok := CgroupLimit(fstest.MapFS{}); ok {
		t.Error("limit without /proc")
	}
	if Soft(100<<20) != 90<<20 {
		t.Error(Soft(100 << 20))
	}
}

func TestApply(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	fsys := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("104857600\n")},
	}
	if got := Apply(func(string) string { return "" }, fsys); got != 90<<20 || debug.SetMemoryLimit(-1) != 90<<20 {
		t.Errorf("Apply set %d, runtime has %d; want %d", got, debug.SetMemoryLimit(-1), 90<<20)
	}
	debug.SetMemoryLimit(before)
	env := func(k string) string { return map[string]string{"GOMEMLIMIT": "50MiB"}[k] }
	if got := Apply(env, fsys); got != 0 || debug.SetMemoryLimit(-1) != before {
		t.Error("Apply overrode GOMEMLIMIT")
	}
}

func TestApplySetsGCPercentUnlessGOGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	fsys := fstest.MapFS{}
	Apply(func(string) string { return "" }, fsys)
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Errorf("GC percent %d after Apply, want %d", got, GCPercent)
	}
	Apply(func(k string) string { return map[string]string{"GOGC": "100"}[k] }, fsys)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("Apply overrode GOGC: GC percent %d", got)
	}
}
