package daemon

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/status"
	"github.com/go-pmtud/go-pmtud/internal/transport"
	"github.com/go-pmtud/go-pmtud/internal/version"
)

// statusSource builds the Report served at /status. Parts that exist only
// once the daemon is further along (capture, firewall) are set later;
// until then the report says they are down.
type statusSource struct {
	cfg      config.Config
	started  time.Time
	m        *metrics.Metrics
	checks   *health.Checker
	registry *peers.Registry
	ring     status.Ring
	peerErrs peerErrors

	mu       sync.Mutex
	capture  func() (up bool, st capture.Stats)
	firewall func() (up bool, err error)
	states   func() []transport.PeerState
}

func newStatusSource(cfg config.Config, m *metrics.Metrics, checks *health.Checker, registry *peers.Registry) *statusSource {
	return &statusSource{cfg: cfg, started: time.Now(), m: m, checks: checks, registry: registry,
		peerErrs: peerErrors{byPeer: map[string]*status.Peer{}}}
}

// set installs the late parts.
func (s *statusSource) set(captureFn func() (bool, capture.Stats), firewallFn func() (bool, error), states func() []transport.PeerState) {
	s.mu.Lock()
	s.capture, s.firewall, s.states = captureFn, firewallFn, states
	s.mu.Unlock()
}

// ServeHTTP serves the Report as JSON.
func (s *statusSource) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.report())
}

func (s *statusSource) report() status.Report {
	r := status.Report{Version: version.Get(), Node: s.cfg.NodeName, Transport: s.cfg.Transport,
		Started: s.started, Now: time.Now(), Recent: s.ring.Last()}
	ready, results := s.checks.ReadyResults()
	r.Ready = ready
	for _, c := range results {
		r.Checks = append(r.Checks, status.Check{Name: c.Name, OK: c.OK, Detail: c.Detail})
	}
	s.mu.Lock()
	captureFn, firewallFn, statesFn := s.capture, s.firewall, s.states
	s.mu.Unlock()
	r.Capture.Group = s.cfg.NFLOGGroup
	if captureFn != nil {
		up, st := captureFn()
		r.Capture = status.Capture{Up: up, Group: s.cfg.NFLOGGroup, Received: st.Received, Lost: st.Lost,
			Overruns: st.Overruns, Restarts: st.Restarts}
	}
	r.Firewall.Mode = s.cfg.Firewall
	if firewallFn != nil {
		up, err := firewallFn()
		r.Firewall.Up = up
		if err != nil {
			r.Firewall.Error = err.Error()
		}
	}
	var states []transport.PeerState
	if statesFn != nil {
		states = statesFn()
	}
	r.Peers = s.peerReport(states)
	r.Counters = s.counters()
	return r
}

func (s *statusSource) peerReport(states []transport.PeerState) status.Peers {
	set := s.registry.Snapshot()
	out := status.Peers{Total: set.Len(), BySource: s.registry.Counts()}
	byName := make(map[string]transport.PeerState, len(states))
	for _, ps := range states {
		byName[ps.Name] = ps
	}
	for _, p := range set.All() {
		e := s.peerErrs.get(p.Name)
		e.Name, e.Addr, e.Reachable = p.Name, peerAddrString(p), true
		if ps, ok := byName[p.Name]; ok && ps.State != transport.StateResolved {
			e.Reachable, e.Problem = false, ps.State.String()
			if ps.Err != nil {
				e.Problem += ": " + ps.Err.Error()
			}
		} else if !e.LastErrAt.IsZero() && time.Since(e.LastErrAt) < peerErrorMemory {
			e.Reachable, e.Problem = false, "send failed "+time.Since(e.LastErrAt).Round(time.Second).String()+" ago"
		}
		out.List = append(out.List, e)
	}
	return out
}

// peerAddrString names a peer's addresses: both of a dual-stack node.
func peerAddrString(p peers.Peer) string {
	if p.V4.IsValid() && p.V6.IsValid() {
		return p.V4.String() + "," + p.V6.String()
	}
	return p.Addr().String()
}

// peerErrorMemory is how long a send error marks a peer unreachable.
const peerErrorMemory = time.Minute

// counters reads the totals from the metrics registry, so they are the
// same numbers Prometheus sees.
func (s *statusSource) counters() status.Counters {
	c := status.Counters{Dropped: map[string]uint64{}}
	for _, f := range s.m.Registry.Gather() {
		for _, mt := range f.Series {
			v := uint64(mt.Value)
			switch f.Name {
			case "gopmtud_packets_received_total":
				c.Received += v
			case "gopmtud_messages_relayed_total":
				c.Relayed += v
			case "gopmtud_frames_sent_total":
				c.FramesSent += v
			case "gopmtud_send_errors_total":
				c.SendErrors += v
			case "gopmtud_packets_dropped_total":
				if v > 0 {
					c.Dropped[mt.Label("reason")] = v
				}
			}
		}
	}
	return c
}

// peerErrors remembers, by peer name, the send errors the relay reported.
// Only failures touch it, never a successful relay.
type peerErrors struct {
	mu     sync.Mutex
	byPeer map[string]*status.Peer
}

func (p *peerErrors) record(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.byPeer[name]
	if e == nil {
		if len(p.byPeer) >= maxTrackedPeers {
			return
		}
		e = &status.Peer{}
		p.byPeer[name] = e
	}
	e.SendErrors++
	e.LastError, e.LastErrAt = err.Error(), time.Now()
}

// maxTrackedPeers bounds the memory failures can take (peers by name).
const maxTrackedPeers = 100000

func (p *peerErrors) get(name string) status.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.byPeer[name]; e != nil {
		return *e
	}
	return status.Peer{}
}

// recordingSender notes every relay in the status ring: a fixed-size copy
// under a short lock, nothing allocated.
type recordingSender struct {
	transport.Sender
	ring *status.Ring
}

func (r recordingSender) Send(m *ptb.Message, to []peers.Peer, onErr func(int, error)) int {
	n := r.Sender.Send(m, to, onErr)
	r.ring.Add(status.Relay{At: time.Now(), Family: m.Family, Router: m.Src, Dst: m.Dst, Client: m.Inner.Dst,
		MTU: m.MTU, Peers: len(to), Frames: n})
	return n
}

// SendBatch records each message of the batch, under one clock reading.
func (r recordingSender) SendBatch(ms []transport.Outgoing, onErr func(int, int, error)) int {
	n := r.Sender.SendBatch(ms, onErr)
	now := time.Now()
	for _, o := range ms {
		m := o.M
		r.ring.Add(status.Relay{At: now, Family: m.Family, Router: m.Src, Dst: m.Dst, Client: m.Inner.Dst,
			MTU: m.MTU, Peers: len(o.To), Frames: o.Sent})
	}
	return n
}
