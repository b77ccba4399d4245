// Package metrics holds go-pmtud's Prometheus collectors. Labels are bounded:
// drop reasons (a fixed enum), address family, transport, source of peers,
// and peer node names (bounded by the cluster size). Never client addresses.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/go-pmtud/go-pmtud/internal/drop"
)

// Namespace prefixes every go-pmtud metric name.
const Namespace = "gopmtud"

const namespace = Namespace

// Metrics is the daemon's set of collectors. Counters the packet path uses
// are resolved once, so that counting costs no label lookup per packet.
type Metrics struct {
	Registry *prometheus.Registry

	Received     prometheus.Counter
	relayed      *prometheus.CounterVec
	Relayed4     prometheus.Counter
	Relayed6     prometheus.Counter
	FramesSent   prometheus.Counter
	dropped      [256]prometheus.Counter // indexed by drop.Reason
	SendErrors   *prometheus.CounterVec  // {peer}
	Peers        *prometheus.GaugeVec    // {source}
	PeersTotal   prometheus.Gauge
	PeerStates   *prometheus.GaugeVec // {state}: PeerStateNames
	CaptureUp    prometheus.Gauge
	FirewallUp   prometheus.Gauge
	RelayLatency prometheus.Histogram
	Fanout       prometheus.Histogram
}

// PeerStateNames are the label values of gopmtud_peer_states: the
// transport's neighbour states (transport.NeighStates, checked by a test).
var PeerStateNames = []string{"resolved", "unresolved", "failed", "not_on_segment", "not_on_link"}

// New registers every collector on a fresh registry (plus Go and process collectors).
func New(transport string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: reg}
	registerBuildInfo(reg)

	m.Received = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "packets_received_total",
		Help: "Packets received from the NFLOG group.",
	})
	m.relayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "messages_relayed_total",
		Help: "PTB messages relayed to peers (each becomes one or more frames).",
	}, []string{"family"})
	m.Relayed4, m.Relayed6 = m.relayed.WithLabelValues("ipv4"), m.relayed.WithLabelValues("ipv6")
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "frames_sent_total",
		Help: "Frames or packets handed to the kernel by the transport.",
	}, []string{"transport"})
	m.FramesSent = frames.WithLabelValues(transport)
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "packets_dropped_total",
		Help: "Packets not relayed, by reason.",
	}, []string{"reason"})
	for _, r := range drop.All() {
		m.dropped[r] = dropped.WithLabelValues(r.String())
	}
	m.SendErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "send_errors_total",
		Help: "Relays that could not be sent to a peer, by peer.",
	}, []string{"peer"})
	m.Peers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "peers",
		Help: "Peers known, by source (static, kubernetes).",
	}, []string{"source"})
	m.PeerStates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "peer_states",
		Help: "Peers (nodes) by what the transport knows of reaching them: resolved (every peer, for transports without per-peer state), unresolved (l2: no MAC yet), failed (nobody answers; retried with backoff), not_on_segment (its MAC is a gateway's or another peer's: proxy ARP), not_on_link (routed elsewhere).",
	}, []string{"state"})
	for _, s := range PeerStateNames {
		m.PeerStates.WithLabelValues(s)
	}
	m.PeersTotal = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "peers_total",
		Help: "Peers relayed to (all sources merged, ourselves excluded).",
	})
	m.CaptureUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "capture_up",
		Help: "1 while the NFLOG capture is receiving, 0 when it is dead.",
	})
	m.FirewallUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "firewall_rule_up",
		Help: "1 while go-pmtud's own nftables table is installed and verified (always 1 with --firewall=none).",
	})
	m.RelayLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "relay_latency_seconds",
		Help: "Time from reading a packet off NFLOG to handing the last relay frame to the kernel.",
		// Microsecond buckets: the relay path itself takes microseconds.
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3},
	})
	m.Fanout = newFanout()
	reg.MustRegister(m.Received, m.relayed, frames, dropped, m.SendErrors, m.Peers, m.PeersTotal, m.PeerStates,
		m.CaptureUp, m.FirewallUp, m.RelayLatency, m.Fanout)
	return m
}

// Dropped returns the counter for reason r.
func (m *Metrics) Dropped(r drop.Reason) prometheus.Counter { return m.dropped[r] }
