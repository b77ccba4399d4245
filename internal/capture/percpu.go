package capture

import "slices"

// MaxPerCPU bounds the readers of a per-CPU capture: each costs a thread,
// a socket and up to 64 KiB of resident receive buffer. CPUs past it share
// the first reader's group.
const MaxPerCPU = 64

// Binding is one reader of a per-CPU capture: the firewall logs the PTBs
// it handles on CPU to Group, and the reader of Group runs on CPU.
type Binding struct {
	CPU   int
	Group uint16
}

// PlanPerCPU gives each CPU of allowed (the CPUs this process may run on),
// lowest first and at most max of them, its own group: base, base+1, ...,
// never past 65535. Packets logged on any other CPU go to base, the first
// reader's group. Fewer than two CPUs need no plan: nil.
func PlanPerCPU(allowed []int, base uint16, max int) []Binding {
	cpus := slices.DeleteFunc(slices.Clone(allowed), func(c int) bool { return c < 0 })
	slices.Sort(cpus)
	cpus = slices.Compact(cpus)
	n := min(len(cpus), max, 1<<16-int(base))
	if n < 2 {
		return nil
	}
	plan := make([]Binding, n)
	for i := range plan {
		plan[i] = Binding{CPU: cpus[i], Group: base + uint16(i)}
	}
	return plan
}
