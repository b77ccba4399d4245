// Package metrics holds go-pmtud's Prometheus metrics (on internal/metrics/expo).
// Labels are bounded: drop reasons (a fixed enum), address family, transport,
// source of peers, and peer node names (bounded by the cluster size). Never
// client addresses.
package metrics

import (
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/metrics/process"
)

// Namespace prefixes every go-pmtud metric name.
const Namespace = "gopmtud"

// Metrics is the daemon's set of collectors. Counters the packet path uses
// are resolved once, so that counting costs no label lookup per packet.
type Metrics struct {
	Registry *expo.Registry

	Received     *expo.Counter
	relayed      *expo.CounterVec
	Relayed4     *expo.Counter
	Relayed6     *expo.Counter
	FramesSent   *expo.Counter
	dropped      [256]*expo.Counter // indexed by drop.Reason
	SendErrors   *expo.CounterVec   // {peer}
	Peers        *expo.GaugeVec     // {source}
	PeersTotal   *expo.Gauge
	PeerStates   *expo.GaugeVec // {state}: PeerStateNames
	CaptureUp    *expo.Gauge
	FirewallUp   *expo.Gauge
	RelayLatency *expo.Histogram
	Fanout       *expo.Histogram
}

// PeerStateNames are the label values of gopmtud_peer_states: the
// transport's neighbour states (transport.NeighStates, checked by a test).
var PeerStateNames = []string{"resolved", "unresolved", "failed", "not_on_segment", "not_on_link"}

// New registers every metric on a fresh registry (plus the process_* and go_* ones).
func New(transport string) *Metrics {
	reg := expo.NewRegistry()
	process.Register(reg)
	m := &Metrics{Registry: reg}
	registerBuildInfo(reg)

	m.Received = expo.NewCounter(expo.Opts{
		Name: "gopmtud_packets_received_total",
		Help: "Packets received from the NFLOG group.",
	})
	m.relayed = expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_messages_relayed_total",
		Help: "PTB messages relayed to peers (each becomes one or more frames).",
	}, "family")
	m.Relayed4, m.Relayed6 = m.relayed.WithLabelValues("ipv4"), m.relayed.WithLabelValues("ipv6")
	frames := expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_frames_sent_total",
		Help: "Frames or packets handed to the kernel by the transport.",
	}, "transport")
	m.FramesSent = frames.WithLabelValues(transport)
	dropped := expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_packets_dropped_total",
		Help: "Packets not relayed, by reason.",
	}, "reason")
	for _, r := range drop.All() {
		m.dropped[r] = dropped.WithLabelValues(r.String())
	}
	m.SendErrors = expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_send_errors_total",
		Help: "Relays that could not be sent to a peer, by peer.",
	}, "peer")
	m.Peers = expo.NewGaugeVec(expo.Opts{
		Name: "gopmtud_peers",
		Help: "Peers known, by source (static, kubernetes).",
	}, "source")
	m.PeerStates = expo.NewGaugeVec(expo.Opts{
		Name: "gopmtud_peer_states",
		Help: "Peers (nodes) by what the transport knows of reaching them: resolved (every peer, for transports without per-peer state), unresolved (l2: no MAC yet), failed (nobody answers; retried with backoff), not_on_segment (its MAC is a gateway's or another peer's: proxy ARP), not_on_link (routed elsewhere).",
	}, "state")
	for _, s := range PeerStateNames {
		m.PeerStates.WithLabelValues(s)
	}
	m.PeersTotal = expo.NewGauge(expo.Opts{
		Name: "gopmtud_peers_total",
		Help: "Peers relayed to (all sources merged, ourselves excluded).",
	})
	m.CaptureUp = expo.NewGauge(expo.Opts{
		Name: "gopmtud_capture_up",
		Help: "1 while the NFLOG capture is receiving, 0 when it is dead.",
	})
	m.FirewallUp = expo.NewGauge(expo.Opts{
		Name: "gopmtud_firewall_rule_up",
		Help: "1 while go-pmtud's own nftables table is installed and verified (always 1 with --firewall=none).",
	})
	m.RelayLatency = expo.NewHistogram(expo.Opts{
		Name: "gopmtud_relay_latency_seconds",
		Help: "Time from reading a packet off NFLOG to handing the last relay frame to the kernel.",
	}, // Microsecond buckets: the relay path itself takes microseconds.
		[]float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3})
	m.Fanout = newFanout()
	reg.MustRegister(m.Received, m.relayed, frames, dropped, m.SendErrors, m.Peers, m.PeersTotal, m.PeerStates,
		m.CaptureUp, m.FirewallUp, m.RelayLatency, m.Fanout)
	return m
}

// Dropped returns the counter for reason r.
func (m *Metrics) Dropped(r drop.Reason) *expo.Counter { return m.dropped[r] }
