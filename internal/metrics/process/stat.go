package process

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// userHZ is the unit of the clock-tick fields in /proc: USER_HZ, 100 on
// every Linux architecture the daemon is built for.
const userHZ = 100

// Stat is what is read of /proc/self/stat.
type Stat struct {
	UTime, STime uint64 // clock ticks
	StartTime    uint64 // clock ticks after boot
	VSize        uint64 // bytes
	RSSPages     uint64
}

// ReadStat reads /proc/self/stat.
func ReadStat() (Stat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

var errStat = errors.New("process: malformed /proc/PID/stat")

// ParseStat parses a /proc/PID/stat line (proc(5)). The command name, in
// parentheses, may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errStat
	}
	// After ")": field 3 (state) is index 0, so field n is index n-3.
	f := bytes.Fields(b[i+1:])
	if len(f) < 22 {
		return Stat{}, errStat
	}
	var s Stat
	for _, p := range []struct {
		field int
		dst   *uint64
	}{{14, &s.UTime}, {15, &s.STime}, {22, &s.StartTime}, {23, &s.VSize}, {24, &s.RSSPages}} {
		v, err := strconv.ParseUint(string(f[p.field-3]), 10, 64)
		if err != nil {
			return Stat{}, errStat
		}
		*p.dst = v
	}
	return s, nil
}

// ParseBootTime finds the "btime" line of /proc/stat: boot time, Unix seconds.
func ParseBootTime(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
		}
	}
	return 0, errors.New("process: no btime in /proc/stat")
}
