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

// Relay runs the packet path. Handle is called from one goroutine (the
// capture loop); SetView may be called from any goroutine.
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

	// Reused on every packet so the hot path does not allocate.
	msg     ptb.Message
	to      []peers.Peer // the recipients of the send in progress, for onErr
	targets []peers.Peer // a targeted fan-out's peers
	onErr   func(int, error)
	// oneFrame: the transport sends one frame per message whatever the
	// peers (broadcast), so a message costs one frame of the budget.
	oneFrame bool

	logs lograte.Limiter
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
}

// New returns a Relay with an empty view (no peers) until SetView.
func New(cfg Config) *Relay {
	r := &Relay{
		limits:  cfg.Limits,
		engine:  cfg.Engine,
		sender:  cfg.Sender,
		metrics: cfg.Metrics,
		dryRun:  cfg.DryRun || cfg.Sender == nil,
		log:     cfg.Logger,
		logs:    lograte.Limiter{PerSecond: 5},
	}
	r.view.Store(policy.NewView(nil, nil, nil, nil))
	r.oneFrame = cfg.Sender != nil && cfg.Sender.Name() == "broadcast"
	// Failures come by index into the recipients: O(1) per failing peer,
	// counted under the node's name.
	r.onErr = func(i int, err error) {
		peer := r.to[i]
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
// the flow m quotes (found by name, O(log n) each), or all of them. It
// allocates only when the peer set grew past what the buffer held.
func (r *Relay) fanout(v *policy.View, m *ptb.Message) []peers.Peer {
	all := v.Recipients(m.Family)
	nodes, every := r.table.Load().Owners(m.Inner.Src, m.Inner.SrcPort, m.Inner.Proto)
	if every {
		return all
	}
	r.targets = r.targets[:0]
	for _, n := range nodes {
		if p, ok := v.RecipientNamed(n, m.Family); ok {
			r.targets = append(r.targets, p)
		}
	}
	return r.targets
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

// Handle takes one captured packet through the path. It returns the
// decision (drop.None when relayed) for tests and callers that log.
func (r *Relay) Handle(p *capture.Packet) drop.Reason {
	r.metrics.Received.Inc()
	now := p.Received
	if now.IsZero() {
		now = time.Now()
	}
	reason := ptb.Parse(p.Payload, r.limits, &r.msg)
	view := r.view.Load()
	var to []peers.Peer
	if reason == drop.None {
		tun := r.tunnelIf.Load()
		o := policy.Origin{SrcMAC: p.SrcMAC, DstMAC: p.DstMAC, HasMAC: p.HasMAC, Tunnel: tun != 0 && p.IfIndex == tun}
		to = r.fanout(view, &r.msg)
		reason = r.engine.DecideFrames(now, &r.msg, o, view, r.frames(to))
	}
	if reason != drop.None {
		r.metrics.Dropped(reason).Inc()
		if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.Allow(now) {
			r.logDrop(reason, p)
		}
		return reason
	}

	r.metrics.Fanout.Observe(float64(len(to)))
	if !r.dryRun {
		r.to = to
		r.metrics.FramesSent.Add(float64(r.sender.Send(&r.msg, to, r.onErr)))
		r.to = nil
	}
	if r.msg.Family == 4 {
		r.metrics.Relayed4.Inc()
	} else {
		r.metrics.Relayed6.Inc()
	}
	r.metrics.RelayLatency.Observe(time.Since(now).Seconds())
	if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.Allow(now) {
		r.log.Debug("relayed", "router", r.msg.Src, "vip", r.msg.Dst, "mtu", r.msg.MTU,
			"client", r.msg.Inner.Dst, "src_mac", macString(p), "peers", len(to), "dry_run", r.dryRun)
	}
	return drop.None
}

func macString(p *capture.Packet) string {
	if !p.HasMAC {
		return ""
	}
	return net.HardwareAddr(p.SrcMAC[:]).String()
}

func (r *Relay) logDrop(reason drop.Reason, p *capture.Packet) {
	if reason.Malformed() {
		r.log.Debug("dropped", "reason", reason.String())
		return
	}
	r.log.Debug("dropped", "reason", reason.String(), "router", r.msg.Src, "vip", r.msg.Dst,
		"mtu", r.msg.MTU, "client", r.msg.Inner.Dst, "src_mac", macString(p))
}
