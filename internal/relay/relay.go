// Package relay is the packet path: every captured packet is parsed (ptb),
// judged (policy) and, if it passes, fanned out to the peers (transport).
// Everything is counted by the same drop reasons the decision returns.
package relay

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
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

	st    atomic.Pointer[state]
	stMu  sync.Mutex // serialises SetView
	table atomic.Pointer[fanout.Table]
	// tunnelIf is the tunnel transport's TUN device (0: none): what arrives
	// on it is a peer's copy we injected.
	tunnelIf atomic.Uint32

	// Reused on every packet so the hot path does not allocate.
	msg       ptb.Message
	onErr     func(netip.Addr, error)
	send      sendState    // the Send in progress, for onErr
	targets   []peers.Peer // a targeted fan-out
	targetIdx []int32
	// oneFrame: the transport sends one frame per message whatever the
	// peers (broadcast), so a message costs one frame of the budget.
	oneFrame bool

	logs logLimiter
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
	SendError func(peer netip.Addr, err error)
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
		logs:    logLimiter{perSecond: 5},
	}
	r.oneFrame = cfg.Sender != nil && cfg.Sender.Name() == "broadcast"
	r.SetView(policy.NewView(nil, nil, nil, nil))
	r.onErr = func(peer netip.Addr, err error) {
		r.countSendError(peer)
		if cfg.SendError != nil {
			cfg.SendError(peer, err)
		}
		if r.logs.allow(r.send.now) {
			r.log.Warn("relay to peer failed", "peer", peer, "err", err)
		}
	}
	return r
}

// SetView swaps in who is who (self, peers, peer MACs). A new peer set is
// indexed here, off the packet path.
func (r *Relay) SetView(v *policy.View) {
	r.stMu.Lock()
	defer r.stMu.Unlock()
	b := (*book)(nil)
	if cur := r.st.Load(); cur != nil && cur.book.set == v.Peers() {
		b = cur.book
	} else {
		b = newBook(v.Peers())
	}
	r.st.Store(&state{view: v, book: b})
}

// SetTunnelIfIndex names the interface index of the tunnel receiver's TUN
// device: a packet captured with it as input interface is a relayed copy,
// whatever rule captured it (0: no tunnel device).
func (r *Relay) SetTunnelIfIndex(i uint32) { r.tunnelIf.Store(i) }

// View returns the current view.
func (r *Relay) View() *policy.View { return r.st.Load().view }

// Handle takes one captured packet through the path. It returns the
// decision (drop.None when relayed) for tests and callers that log.
func (r *Relay) Handle(p *capture.Packet) drop.Reason {
	r.metrics.Received.Inc()
	now := p.Received
	if now.IsZero() {
		now = time.Now()
	}
	reason := ptb.Parse(p.Payload, r.limits, &r.msg)
	st := r.st.Load()
	var to []peers.Peer
	if reason == drop.None {
		tun := r.tunnelIf.Load()
		o := policy.Origin{SrcMAC: p.SrcMAC, DstMAC: p.DstMAC, HasMAC: p.HasMAC, Tunnel: tun != 0 && p.IfIndex == tun}
		to = r.fanout(st.book, &r.msg)
		reason = r.engine.DecideFrames(now, &r.msg, o, st.view, r.frames(to))
	}
	if reason != drop.None {
		r.metrics.Dropped(reason).Inc()
		if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.allow(now) {
			r.logDrop(reason, p)
		}
		return reason
	}

	r.metrics.Fanout.Observe(float64(len(to)))
	if !r.dryRun {
		r.send.to, r.send.now = to, now
		r.metrics.FramesSent.Add(float64(r.sender.Send(&r.msg, to, r.onErr)))
	}
	if r.msg.Family == 4 {
		r.metrics.Relayed4.Inc()
	} else {
		r.metrics.Relayed6.Inc()
	}
	r.metrics.RelayLatency.Observe(time.Since(now).Seconds())
	if r.log.Enabled(context.Background(), slog.LevelDebug) && r.logs.allow(now) {
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

// logLimiter lets through at most perSecond log lines per second, so a
// packet flood cannot become a log flood.
type logLimiter struct {
	perSecond int
	second    int64
	count     int
}

func (l *logLimiter) allow(now time.Time) bool {
	s := now.Unix()
	if s != l.second {
		l.second, l.count = s, 0
	}
	l.count++
	return l.count <= l.perSecond
}
