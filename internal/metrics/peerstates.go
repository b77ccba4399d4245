package metrics

import "github.com/prometheus/client_golang/prometheus"

// PeerStates is gopmtud_peer_states{state}: how many peers the transport
// can reach and why not (l2: resolved, unresolved, failed, not_on_segment,
// not_on_link). The states are a fixed list, so the label is bounded.
type PeerStates struct {
	g *prometheus.GaugeVec
}

// RegisterPeerStates registers the gauge on reg with every state at 0 (a
// series that exists at zero is easier to alert on than a missing one).
func RegisterPeerStates(reg prometheus.Registerer, states []string) *PeerStates {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "peer_states",
		Help: "Peers by reachability state on the transport (l2: resolved, unresolved, failed, not_on_segment, not_on_link).",
	}, []string{"state"})
	for _, s := range states {
		g.WithLabelValues(s).Set(0)
	}
	reg.MustRegister(g)
	return &PeerStates{g: g}
}

// Set sets each state's count; states absent from counts keep their value.
func (p *PeerStates) Set(counts map[string]int) {
	for s, n := range counts {
		p.g.WithLabelValues(s).Set(float64(n))
	}
}
