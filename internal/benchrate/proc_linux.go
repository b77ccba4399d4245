//go:build linux

package benchrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (proc(5)).
const userHZ = 100

// CPU is utime+stime of pid, all threads.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// Mem is a process's resident memory, bytes (proc(5), /proc/PID/status).
type Mem struct {
	RSS, HWM   int64 // VmRSS, VmHWM (peak)
	Anon, File int64 // RssAnon (heap, stacks), RssFile (the binary's pages)
}

// Memory reads pid's resident memory.
func Memory(pid int) (m Mem, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.HWM = n << 10
		case "RssAnon":
			m.Anon = n << 10
		case "RssFile":
			m.File = n << 10
		}
	}
	return m, nil
}

// NoBridgeNetfilter turns off br_netfilter's calls into the IP and ARP
// hooks for bridged frames in namespace ns (the segment's switch). Its
// per-frame work runs inside the sender's system call on veth, so it was
// charged to the daemon's send; on a real segment a switch does not run in
// the node's kernel at all. The sysctls are per namespace.
func NoBridgeNetfilter(ns string) error {
	return netnsutil.DoNamed(ns, func() error {
		for _, k := range []string{"iptables", "ip6tables", "arptables"} {
			err := os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-"+k, []byte("0"), 0)
			if err != nil && !errors.Is(err, fs.ErrNotExist) { // no br_netfilter: nothing to turn off
				return err
			}
		}
		return nil
	})
}
