// Package inject is the receiving end of the tunnel transport: it takes the
// UDP datagrams peers send (internal/transport, tunnel.go), checks them, and
// writes the original PTB packet into a TUN device, so that this node's
// kernel processes it exactly as if it had arrived from the network:
// PREROUTING, conntrack relating it to a (DNATed) flow and translating it
// for the pod, or local delivery to a socket on the node.
//
// This file is the decision, pure and allocation-free; the sockets and the
// device are in receiver_linux.go.
package inject

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// Result is what became of one received datagram. The values are the
// bounded label of gopmtud_tunnel_received_total.
type Result uint8

const (
	Injected    Result = iota // written to the TUN device
	NotPeer                   // the source address is not a current peer's
	BadHeader                 // not a tunnel datagram of a version we speak
	BadPTB                    // the payload is not a valid PTB (ptb.Parse refused it)
	InjectError               // the TUN device refused the write

	numResults
)

var resultNames = [numResults]string{
	Injected:    "injected",
	NotPeer:     "not_peer",
	BadHeader:   "bad_header",
	BadPTB:      "bad_ptb",
	InjectError: "inject_error",
}

// String returns the result's metric label value.
func (r Result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}

// Results lists every result, for pre-registering the metric.
func Results() []Result {
	out := make([]Result, numResults)
	for i := range out {
		out[i] = Result(i)
	}
	return out
}

// Classify decides whether a datagram d from address from may be injected:
// from must be a peer (isPeer), the header must be ours, and the packet
// must parse as a PTB within lim. It returns the packet to inject (m.Packet:
// trimmed to its stated IP length, aliasing d) and Injected, or the reason
// to drop it with the parser's reason for BadPTB. m is scratch space owned
// by the caller. Classify does not allocate.
//
// The peer check comes first: anybody can send us a datagram, and the
// cheapest question tells most of them apart.
func Classify(d []byte, from netip.Addr, isPeer func(netip.Addr) bool, lim ptb.Limits, m *ptb.Message) ([]byte, Result, drop.Reason) {
	if !isPeer(from.Unmap().WithZone("")) {
		return nil, NotPeer, drop.None
	}
	_, pkt, err := transport.ParseTunnel(d)
	if err != nil {
		return nil, BadHeader, drop.None
	}
	if reason := ptb.Parse(pkt, lim, m); reason != drop.None {
		return nil, BadPTB, reason
	}
	return m.Packet, Injected, drop.None
}

// metrics counts datagrams by result: gopmtud_tunnel_received_total{result}.
type metrics struct {
	byResult [numResults]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gopmtud", Subsystem: "tunnel", Name: "received_total",
		Help: "Tunnel datagrams received from peers, by what became of them (injected into the TUN device, or why not).",
	}, []string{"result"})
	m := &metrics{}
	for _, r := range Results() {
		m.byResult[r] = vec.WithLabelValues(r.String())
	}
	if reg != nil {
		reg.MustRegister(vec)
	}
	return m
}
