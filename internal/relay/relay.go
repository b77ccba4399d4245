// Package relay is the packet path: every captured packet is parsed (ptb),
// judged (policy) and, if it passes, fanned out to the peers (transport).
// Everything is counted by the same drop reasons the decision returns.
package relay

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/lograte"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// maxPending is how many relayed messages Queue holds before it flushes by
// itself: more than one capture receive brings (the listener reads up to 16
// datagrams a call), so a flush is normally one per receive.
const maxPending = 64

// Relay runs the packet path. Handle, Queue and Flush are called from one
// goroutine (the capture loop); SetView may be called from any goroutine.
type Relay struct {
	limits  ptb.Limits
	engine  *policy.Engine
	sender  transport.Sender
	metrics *metrics.Metrics
	dryRun  bool
	log     *slog.Logger

	view  atomic.Pointer[policy.View]
	table atomic.Pointer[fanout.Table] // which nodes can own which Service's flows; nil: every peer
	// tunnelIf is the tunnel transport's TUN device (0: none): what arrives
	// on it is a peer's copy we injected.
	tunnelIf atomic.Uint32

	// Messages decided for relay and not yet sent (Queue, then Flush), in
	// buffers reused on every batch so the hot path does not allocate:
	// msgs[k] and recv[k] belong to out[k]; a targeted fan-out's peers are
	// copied into targets, which each out[k].To slices.
	msgs    [maxPending]ptb.Message
	recv    [maxPending]time.Time
	out     []transport.Outgoing
	targets []peers.Peer
	onErr   func(msg, peer int, err error)
	// oneFrame: the transport sends one frame per message whatever the
	// peers (broadcast), so a message costs one frame of the budget.
	oneFrame bool

	logs lograte.Limiter
	// idleFrom is the tables' size when the current idle period began
	// (Idle); 0: not idle.
	idleFrom int
	gaveBack func()
}

// Config wires a Relay.
type Config struct {
	Limits  ptb.Limits
	Engine  *policy.Engine
	Sender  transport.Sender // may be nil with DryRun
	Metrics *metrics.Metrics
	DryRun  bool
	Logger  *slog.Logger
	// SendError, if set, is also called for every peer a relay could not
	// reach; the relay counts those in Metrics.SendErrors itself.
	SendError func(peer peers.Peer, err error)
	// GaveBack, if set, is called by Idle when the tables gave back memory
	// a burst grew: the daemon then returns the heap the burst grew too.
	GaveBack func()
}

// New returns a Relay with an empty view (no peers) until SetView.
func New(cfg Config) *Relay {
	r := &Relay{
		limits:   cfg.Limits,
		engine:   cfg.Engine,
		sender:   cfg.Sender,
		metrics:  cfg.Metrics,
		dryRun:   cfg.DryRun || cfg.Sender == nil,
		log:      cfg.Logger,
		logs:     lograte.Limiter{PerSecond: 5},
		gaveBack: cfg.GaveBack,
	}
	r.view.Store(policy.NewView(nil, nil, nil, nil))
	r.oneFrame = cfg.Sender != nil && cfg.Sender.Name() == "broadcast"
	// Failures come by index into the recipients: O(1) per failing peer,
	// counted under the node's name.
	r.out = make([]transport.Outgoing, 0, maxPending)
	r.onErr = func(msg, i int, err error) {
		peer := r.out[msg].To[i]
		r.metrics.SendErrors.WithLabelValues(peer.Name).Inc()
		if cfg.SendError != nil {
			cfg.SendError(peer, err)
		}
		if r.logs.Allow(time.Now()) {
			r.log.Warn("relay to peer failed", "peer", peer.Name, "addr", peer.Addr(), "err", err)
		}
	}
	return r
}

// SetView swaps in who is who (self, peers, peer MACs).
func (r *Relay) SetView(v *policy.View) { r.view.Store(v) }

// SetFanout swaps in the table of which nodes can own which Service's
// flows (Kubernetes). nil, the default, relays every message to every
// recipient, as the static --peers mode always does.
func (r *Relay) SetFanout(t *fanout.Table) { r.table.Store(t) }

// fanout returns the peers m goes to: the recipients whose node can own
// the flow m quotes (found by name, O(log n) each), or all of them. The
// targeted ones are appended to r.targets, which holds them until Flush; it
// allocates only when that buffer grows.
func (r *Relay) fanout(v *policy.View, m *ptb.Message) []peers.Peer {
	all := v.Recipients(m.Family)
	nodes, every := r.table.Load().Owners(m.Inner.Src, m.Inner.SrcPort, m.Inner.Proto)
	if every {
		return all
	}
	start := len(r.targets)
	for _, n := range nodes {
		if p, ok := v.RecipientNamed(n, m.Family); ok {
			r.targets = append(r.targets, p)
		}
	}
	return r.targets[start:len(r.targets):len(r.targets)]
}

// frames is what relaying to `to` costs of the frame budget.
func (r *Relay) frames(to []peers.Peer) int {
	if r.oneFrame && len(to) > 0 {
		return 1
	}
	return len(to)
}

// SetTunnelIfIndex names the interface index of the tunnel receiver's TUN
// device: a packet captured with it as input interface is a relayed copy,
// whatever rule captured it (0: no tunnel device).
func (r *Relay) SetTunnelIfIndex(i uint32) { r.tunnelIf.Store(i) }

// View returns the current view.
func (r *Relay) View() *policy.View { return r.view.Load() }

// Handle takes one captured packet through the path and sends it at once
// (Queue, then Flush). It returns the decision (drop.None when relayed) for
// tests and callers that log.
func (r *Relay) Handle(p *capture.Packet) drop.Reason {
	reason := r.Queue(p)
	r.Flush()
	return reason
}

// Queue parses and judges one captured packet; a message to relay is held
// until Flush, which sends the frames of every held message together. The
// packet's payload must stay unchanged until then (the capture listener
// keeps a receive's payloads until its flush). Queue flushes by itself when
// maxPending messages are held.
func (r *Relay) Queue(p *capture.Packet) drop.Reason {
	if len(r.out) == maxPending {
		r.Flush()
	}
	r.metrics.Received.Inc()
	now := p.Received
	if now.IsZero() {
		now = time.Now()
	}
	k := len(r.out)
	m := &r.msgs[k]
	reason := ptb.Parse(p.Payload, r.limits, m)
	view := r.view.Load()
	var to []peers.Peer
	if reason == drop.None {
		tun := r.tunnelIf.Load()
		o := policy.Origin{SrcMAC: p.SrcMAC, DstMAC: p.DstMAC, HasMAC: p.HasMAC, Tunnel: tun != 0 && p.IfIndex == tun}
		to = r.fanout(view, m)
		reason = r.engine.DecideFrames(now, m, o, view, r.frames(to))
	}
	if reason != drop.None {
		r.metrics.Dropped(reason).Inc()
		if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.Allow(now) {
			r.logDrop(reason, m, p)
		}
		return reason
	}
	r.metrics.Fanout.Observe(float64(len(to)))
	r.out = append(r.out, transport.Outgoing{M: m, To: to})
	r.recv[k] = now
	if m.Family == 4 {
		r.metrics.Relayed4.Inc()
	} else {
		r.metrics.Relayed6.Inc()
	}
	if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.Allow(now) {
		r.log.Debug("relayed", "router", m.Src, "vip", m.Dst, "mtu", m.MTU,
			"client", m.Inner.Dst, "src_mac", macString(p), "peers", len(to), "dry_run", r.dryRun)
	}
	return drop.None
}

// Flush sends the frames of every message Queue holds, with as few system
// calls as the transport can, and observes each message's latency from its
// capture to the end of the send.
func (r *Relay) Flush() {
	if len(r.out) == 0 {
		return
	}
	if !r.dryRun {
		r.metrics.FramesSent.Add(float64(r.sender.SendBatch(r.out, r.onErr)))
	}
	now := time.Now()
	for k := range r.out {
		r.metrics.RelayLatency.Observe(now.Sub(r.recv[k]).Seconds())
	}
	// Nothing is zeroed: Parse resets each message it fills, and the next
	// batch overwrites out and targets from the start.
	r.out = r.out[:0]
	r.targets = r.targets[:0]
}

// Idle lets the policy expire what it holds when no packet has come for a
// while (capture's idle hook, on the capture goroutine like Queue): the
// memory a burst grew is given back, over a few calls as its tables'
// states expire, and logged once it all is. It reports whether a later
// call has more to give back.
func (r *Relay) Idle(now time.Time) bool {
	if r.idleFrom == 0 {
		r.idleFrom = r.engine.TableBytes()
	}
	if r.engine.Trim(now) {
		return true
	}
	if after := r.engine.TableBytes(); after < r.idleFrom {
		if r.gaveBack != nil {
			r.gaveBack()
		}
		r.log.Info("gave back policy table memory grown for a burst", "bytes_before", r.idleFrom, "bytes_after", after)
	}
	r.idleFrom = 0
	return false
}

func macString(p *capture.Packet) string {
	if !p.HasMAC {
		return ""
	}
	return net.HardwareAddr(p.SrcMAC[:]).String()
}

func (r *Relay) logDrop(reason drop.Reason, m *ptb.Message, p *capture.Packet) {
	if reason.Malformed() {
		r.log.Debug("dropped", "reason", reason.String())
		return
	}
	r.log.Debug("dropped", "reason", reason.String(), "router", m.Src, "vip", m.Dst,
		"mtu", m.MTU, "client", m.Inner.Dst, "src_mac", macString(p))
}
