package metrics

import "github.com/go-pmtud/go-pmtud/internal/metrics/expo"

// newFanout is the size of each relayed message's fan-out: with targeted
// fan-out (Kubernetes) the nodes that can own the flow, else every peer of
// the family. No per-peer label: its cost does not grow with the cluster.
func newFanout() *expo.Histogram {
	return expo.NewHistogram(expo.Opts{
		Name: "gopmtud_relay_fanout_peers",
		Help: "Peers each relayed message was sent to (the nodes that can own the flow when targeted, else every peer of its family).",
	}, []float64{1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000})
}
