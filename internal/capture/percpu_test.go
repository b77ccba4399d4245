package capture

import (
	"slices"
	"testing"
)

func TestPlanPerCPU(t *testing.T) {
	for _, c := range []struct {
		name    string
		allowed []int
		base    uint16
		max     int
		want    []Binding
	}{
		{"two CPUs", []int{0, 1}, 33, MaxPerCPU, []Binding{{0, 33}, {1, 34}}},
		{"unsorted, repeated, a gap", []int{5, 2, 5, 3}, 33, MaxPerCPU, []Binding{{2, 33}, {3, 34}, {5, 35}}},
		{"capped: the lowest CPUs", []int{3, 2, 1, 0}, 10, 2, []Binding{{0, 10}, {1, 11}}},
		{"groups end at 65535", []int{0, 1, 2}, 65534, MaxPerCPU, []Binding{{0, 65534}, {1, 65535}}},
		{"no room for a second group", []int{0, 1}, 65535, MaxPerCPU, nil},
		{"one CPU", []int{7}, 33, MaxPerCPU, nil},
		{"none", nil, 33, MaxPerCPU, nil},
		{"negative entries ignored", []int{-1, 4, 6}, 1, MaxPerCPU, []Binding{{4, 1}, {6, 2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.allowed)
			got := PlanPerCPU(c.allowed, c.base, c.max)
			if !slices.Equal(got, c.want) {
				t.Errorf("PlanPerCPU(%v, %d, %d) = %v, want %v", c.allowed, c.base, c.max, got, c.want)
			}
			if !slices.Equal(in, c.allowed) {
				t.Errorf("the caller's slice changed: %v", c.allowed)
			}
		})
	}
}
