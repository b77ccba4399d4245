package benchrate

import (
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0-100) of ds by nearest rank;
// ds is sorted in place. Zero for an empty slice.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p/100*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}

// Latencies pairs each index seen at the router (sent) with its copy at a
// peer (got) and returns copy time minus send time for every pair.
func Latencies(sent, got map[uint64]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(got))
	for idx, t := range got {
		if s, ok := sent[idx]; ok {
			out = append(out, t.Sub(s))
		}
	}
	return out
}
