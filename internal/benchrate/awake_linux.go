package benchrate

import (
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// KeepCPUsAwake starts n busy loops at SCHED_IDLE priority, each for at
// most limit, and returns a function that stops them. A node running
// workloads seldom lets its CPUs halt; an idle VM does, and waking a
// halted vCPU costs more than the whole relay (about 100 µs here). The
// loops keep the vCPUs from halting without taking CPU from anything
// else: any other task preempts a SCHED_IDLE one at once, and a CPU
// running only such tasks counts as idle when the kernel places a wakeup.
// They are plain processes (timeout, chrt, sh), touching no namespace.
func KeepCPUsAwake(n int, limit time.Duration) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			// The loop is timeout's child: kill the whole group, or it
			// would outlive a killed timeout.
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Wait()
		}
	}
	secs := strconv.Itoa(int(limit.Seconds()) + 1)
	for range n {
		c := exec.Command("timeout", secs, "chrt", "--idle", "0", "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("starting a SCHED_IDLE busy loop: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}
