// Package inject is the receiving end of the tunnel transport: it takes the
// UDP datagrams peers send (wire format in package tunnelwire), checks
// them, and writes the original PTB packet into a TUN device, so that this
// node's kernel processes it exactly as if it had arrived from the network:
// PREROUTING, conntrack relating it to a (DNATed) flow and translating it
// for the pod, or local delivery to a socket on the node.
//
// The checks are in this file (the Gate, pure and allocation-free); the
// sockets and the device are in receiver_linux.go.
package inject

import (
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// Result is what became of one received datagram. The values are the
// bounded label of gopmtud_tunnel_received_total.
type Result uint8

const (
	Injected          Result = iota // written to the TUN device
	NotPeer                         // the source address is not a current peer's
	BadHeader                       // not a tunnel datagram of a version we speak
	UnknownKey                      // signed with a key we do not have (or unsigned)
	BadMAC                          // the MAC does not verify: forged or damaged
	Stale                           // timestamp outside the freshness window
	Replayed                        // (epoch, counter) already seen, or too old for the window
	RateLimitedPeer                 // this peer's receive limit exceeded
	RateLimitedGlobal               // the overall receive limit exceeded
	BadPTB                          // the payload is not a valid PTB (ptb.Parse refused it)
	BadDestination                  // outer destination multicast, broadcast, unspecified or loopback
	ForeignInner                    // the quoted packet's source is not the outer destination
	NotOurs                         // the outer destination is not this node's (local, --relay-for, Service VIP)
	InjectError                     // the TUN device refused the write

	numResults
)

var resultNames = [numResults]string{
	Injected:          "injected",
	NotPeer:           "not_peer",
	BadHeader:         "bad_header",
	UnknownKey:        "unknown_key",
	BadMAC:            "bad_mac",
	Stale:             "stale",
	Replayed:          "replayed",
	RateLimitedPeer:   "rate_limited_peer",
	RateLimitedGlobal: "rate_limited_global",
	BadPTB:            "bad_ptb",
	BadDestination:    "bad_destination",
	ForeignInner:      "foreign_inner",
	NotOurs:           "not_ours",
	InjectError:       "inject_error",
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

// metrics counts datagrams by result: gopmtud_tunnel_received_total{result}.
type metrics struct {
	byResult [numResults]*expo.Counter
}

func newMetrics(reg *expo.Registry, socketDrops func() uint64) *metrics {
	vec := expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_tunnel_received_total",
		Help: "Tunnel datagrams received from peers, by what became of them (injected into the TUN device, or why not).",
	}, "result")
	m := &metrics{}
	for _, r := range Results() {
		m.byResult[r] = vec.WithLabelValues(r.String())
	}
	if reg != nil {
		reg.MustRegister(vec, expo.NewCounterFunc(expo.Opts{
			Name: "gopmtud_tunnel_socket_drops_total",
			Help: "Tunnel datagrams the kernel dropped at the receiver's socket, its buffer full: lost before any check.",
		}, func() float64 { return float64(socketDrops()) }))
	}
	return m
}

// ours reports whether this node may inject a PTB addressed to dst: one of
// its own addresses, a --relay-for prefix (VIPs only DNATed here, never on
// an interface), or a Service VIP the caller knows of.
func (g *Gate) ours(dst netip.Addr) bool {
	if g.cfg.IsLocal != nil && g.cfg.IsLocal(dst) {
		return true
	}
	for _, p := range g.cfg.RelayFor {
		if p.Contains(dst) {
			return true
		}
	}
	return g.cfg.IsVIP != nil && g.cfg.IsVIP(dst)
}

// badDestination: addresses a PTB is never legitimately about. Injecting
// them would reach every host of a segment, or the node itself by a path no
// real PTB takes.
func badDestination(dst netip.Addr, isBroadcast func(netip.Addr) bool) bool {
	return !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() || dst.IsLoopback() ||
		dst.IsLinkLocalMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) ||
		(isBroadcast != nil && isBroadcast(dst))
}

// checkPTB parses pkt and checks what it is about: the outer destination
// must be a plausible one and ours, and the quoted packet must be one we
// sent from it (its source is the outer destination). m is filled in.
func (g *Gate) checkPTB(pkt []byte, m *ptb.Message) (Result, drop.Reason) {
	if reason := ptb.Parse(pkt, g.cfg.Limits, m); reason != drop.None {
		return BadPTB, reason
	}
	dst := m.Dst.Unmap()
	if badDestination(dst, g.cfg.IsBroadcast) {
		return BadDestination, drop.None
	}
	if m.Inner.Src.Unmap() != dst {
		return ForeignInner, drop.ForeignInner
	}
	if !g.ours(dst) {
		return NotOurs, drop.None
	}
	return Injected, drop.None
}
