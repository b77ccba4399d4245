// Package daemon wires go-pmtud together: it resolves the uplink, opens the
// capture, installs the firewall rule, keeps the peer view fresh, serves
// metrics and health, and runs the packet path until told to stop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/firewall"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/relay"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// How often state that can drift under us is looked at again.
const (
	viewRefresh     = time.Second      // own addresses, peer MACs (l2 loop guard: learn them fast)
	firewallRefresh = 10 * time.Second // somebody flushed the ruleset?
	captureRetries  = 5                // rebinds before giving up and exiting non-zero
)

// Run runs the daemon until ctx is cancelled. A returned error means the
// process should exit non-zero.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	// Before anything that changes the node: a second instance must not
	// touch the first one's table.
	lock, err := lockInstance()
	if err != nil {
		return err
	}
	defer lock.Close()

	uplink, err := resolveUplink(cfg.Iface)
	if err != nil {
		return err
	}
	log.Info("starting", "iface", uplink.Name, "transport", cfg.Transport, "nflog_group", cfg.NFLOGGroup,
		"firewall", cfg.Firewall, "dry_run", cfg.DryRun, "nodename", cfg.NodeName)

	m := metrics.New(cfg.Transport)
	checks := health.New()

	self, err := localIdentity(uplink)
	if err != nil {
		return err
	}
	registry := peers.NewRegistry(self.addrs...)

	openSender := func() (transport.Sender, error) { return newSender(cfg, uplink.Name, log) }
	first, err := openSender()
	if err != nil {
		return fmt.Errorf("transport %s: %w", cfg.Transport, err)
	}
	sender := &reopenable{cur: first}
	defer sender.Close()

	engine, err := policy.New(cfg.Policy)
	if err != nil {
		return err
	}
	limits := ptb.DefaultLimits()
	if cfg.Strict {
		limits = ptb.StrictLimits()
	}
	path := relay.New(relay.Config{
		Limits: limits, Engine: engine, Sender: sender, Metrics: m, DryRun: cfg.DryRun,
		Logger: log.With("component", "relay"),
	})
	tunnel, err := openTunnelReceiver(cfg, registry, limits, m, checks, log)
	if err != nil {
		return err
	}
	if tunnel != nil {
		defer tunnel.Close()
		path.SetTunnelIfIndex(uint32(tunnel.IfIndex()))
	}

	servers, err := serve(cfg, m, checks, log)
	if err != nil {
		return err
	}
	defer shutdown(servers)

	// Capture before the rule: a rule logging to an unbound group loses packets.
	captureCfg := capture.Config{Group: cfg.NFLOGGroup, Bufsize: cfg.CaptureBuffer, Logger: log.With("component", "capture")}
	listener, err := capture.Open(captureCfg)
	if err != nil {
		return err
	}
	defer listener.Close()

	fw, err := installFirewall(cfg, uplink.Name, log)
	if err != nil {
		return err
	}
	if fw != nil {
		defer func() {
			if err := fw.Remove(); err != nil {
				log.Error("removing firewall table", "err", err)
			} else {
				log.Info("firewall table removed")
			}
		}()
	}
	m.FirewallUp.Set(1)

	if len(cfg.Peers) > 0 {
		static := make([]peers.Peer, len(cfg.Peers))
		for i, a := range cfg.Peers {
			static[i] = peers.Peer{Addr: a}
		}
		registry.Update("static", static)
	}
	if err := startKubernetes(ctx, cfg, registry, m, checks, log, path.SetFanout); err != nil {
		return err
	}

	// What the last view lacked (l2: peer MACs); readiness reports it.
	var viewErr atomic.Pointer[struct{ err error }]
	viewErr.Store(&struct{ err error }{errNoView})

	var capMu sync.Mutex
	current := listener
	var pastStats capture.Stats // of listeners replaced by a rebind
	captureStats := func() capture.Stats {
		capMu.Lock()
		defer capMu.Unlock()
		st := current.Stats()
		return capture.Stats{Received: pastStats.Received + st.Received, Overruns: pastStats.Overruns + st.Overruns,
			Lost: pastStats.Lost + st.Lost, Restarts: pastStats.Restarts + st.Restarts}
	}
	registerCaptureStats(m, captureStats)
	checks.Live("process", func() error { return nil })
	// Overruns do not fail readiness (capture goes on), but the detail
	// shows them: a burst bigger than the buffer lost messages.
	checks.ReadyDetail("capture", func() error {
		capMu.Lock()
		defer capMu.Unlock()
		if !current.Up() {
			return fmt.Errorf("nflog group %d is not receiving", cfg.NFLOGGroup)
		}
		return nil
	}, func() string {
		st := captureStats()
		return fmt.Sprintf("nflog group %d: %d received, %d lost in %d buffer overruns, %d restarts",
			cfg.NFLOGGroup, st.Received, st.Lost, st.Overruns, st.Restarts)
	})
	var fwErr error
	var fwMu sync.Mutex
	checks.Ready("firewall", func() error { fwMu.Lock(); defer fwMu.Unlock(); return fwErr })
	// No peers is reported, not failed: a one-node cluster has nobody to
	// relay to, and a never-ready pod would hang every DaemonSet rollout
	// (the gopmtud_peers_total == 0 alert is the signal for that case).
	checks.ReadyDetail("peers", func() error { return viewErr.Load().err }, func() string {
		set := registry.Snapshot()
		if set.Len() == 0 {
			return "no peers known: nothing to relay to"
		}
		return fmt.Sprintf("%d peers (%d IPv4, %d IPv6)", set.Len(), len(set.Family(4)), len(set.Family(6)))
	})

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if tunnel != nil {
		wg.Add(1)
		go func() { defer wg.Done(); runTunnelReceiver(ctx, tunnel, log) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		keepViewFresh(ctx, uplink, cfg.Transport, sender, openSender, registry, path, m, log, func(err error) {
			viewErr.Store(&struct{ err error }{err})
		})
	}()
	if fw != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keepFirewall(ctx, fw, m, log, func(err error) { fwMu.Lock(); fwErr = err; fwMu.Unlock() })
		}()
	}

	// The packet path. If capture dies, rebind a few times before giving up.
	m.CaptureUp.Set(1)
	log.Info("relaying", "peers", registry.Snapshot().Len())
	for attempt := 0; ; attempt++ {
		err := current.Run(ctx, func(p *capture.Packet) { path.Handle(p) })
		if ctx.Err() != nil {
			log.Info("stopping")
			return nil
		}
		m.CaptureUp.Set(0)
		if attempt >= captureRetries {
			return fmt.Errorf("capture on nflog group %d died %d times, last: %w", cfg.NFLOGGroup, attempt+1, err)
		}
		log.Error("capture died, rebinding", "err", err, "attempt", attempt+1)
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		current.Close()
		next, oerr := capture.Open(captureCfg)
		if oerr != nil {
			log.Error("rebinding capture", "err", oerr)
			continue
		}
		capMu.Lock()
		st := current.Stats()
		pastStats.Received += st.Received
		pastStats.Overruns += st.Overruns
		pastStats.Lost += st.Lost
		pastStats.Restarts += st.Restarts
		current = next
		capMu.Unlock()
		m.CaptureUp.Set(1)
	}
}

// registerCaptureStats exports the listener's counters, which only the
// listener knows: overruns and lost messages are what a burst bigger than
// the NFLOG buffer costs.
func registerCaptureStats(m *metrics.Metrics, stats func() capture.Stats) {
	for _, c := range []struct {
		name, help string
		get        func(capture.Stats) uint64
	}{
		{"capture_overruns_total", "NFLOG receive buffer overruns (ENOBUFS): the kernel dropped logged packets.", func(s capture.Stats) uint64 { return s.Overruns }},
		{"capture_lost_total", "Packets the kernel logged to NFLOG that go-pmtud never read (sequence gaps).", func(s capture.Stats) uint64 { return s.Lost }},
		{"capture_restarts_total", "NFLOG socket reopens after a fatal receive error.", func(s capture.Stats) uint64 { return s.Restarts }},
	} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gopmtud", Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(stats())) }))
	}
}

func newSender(cfg config.Config, iface string, log *slog.Logger) (transport.Sender, error) {
	switch cfg.Transport {
	case config.TransportL2:
		return transport.NewL2(transport.L2Config{Iface: iface, Logger: log.With("component", "transport")})
	case config.TransportBroadcast:
		return transport.NewBroadcast(transport.BroadcastConfig{Iface: iface})
	case config.TransportTunnel:
		return transport.NewTunnel(transport.TunnelConfig{Port: cfg.TunnelPort})
	default:
		return transport.NewRouted(transport.RoutedConfig{TTL: cfg.TTL})
	}
}

func installFirewall(cfg config.Config, iface string, log *slog.Logger) (*firewall.Table, error) {
	if cfg.Firewall == "none" {
		log.Info("firewall rule left to the operator", "nflog_group", cfg.NFLOGGroup)
		return nil, nil
	}
	fw, err := firewall.New(firewall.Config{Iface: iface, Group: cfg.NFLOGGroup, RatePerSecond: cfg.CaptureRate,
		Burst: cfg.CaptureBurst, SourceRatePerSecond: cfg.CaptureSourceRate})
	if err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	if err := fw.Install(); err != nil {
		return nil, fmt.Errorf("installing nftables table: %w", err)
	}
	log.Info("firewall table installed", "table", "inet go-pmtud", "iface", iface)
	return fw, nil
}

// keepFirewall re-verifies the table and reinstalls it if somebody removed it
// (e.g. an `nft flush ruleset` by another agent on the node).
func keepFirewall(ctx context.Context, fw *firewall.Table, m *metrics.Metrics, log *slog.Logger, report func(error)) {
	t := time.NewTicker(firewallRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := fw.Verify()
		if err == nil {
			report(nil)
			m.FirewallUp.Set(1)
			continue
		}
		log.Warn("firewall table changed under us, reinstalling", "err", err)
		if ierr := fw.Install(); ierr != nil {
			log.Error("reinstalling firewall table", "err", ierr)
			report(ierr)
			m.FirewallUp.Set(0)
			continue
		}
		report(nil)
		m.FirewallUp.Set(1)
	}
}

// keepViewFresh rebuilds the policy's view whenever the peers change, and
// periodically for our own addresses and the peers' MACs. It also follows
// the uplink: if it was deleted and recreated, a transport bound to it is
// reopened (see reopenable).
func keepViewFresh(ctx context.Context, uplink *net.Interface, transportName string, sender *reopenable, open func() (transport.Sender, error), registry *peers.Registry, path *relay.Relay, m *metrics.Metrics, log *slog.Logger, report func(error)) {
	t := time.NewTicker(viewRefresh)
	defer t.Stop()
	last := -1
	var told *peers.Set
	var linkErr error
	for {
		now, lerr := followUplink(uplink, transportName, sender, open, log)
		if now != uplink {
			uplink = now
			told = nil // a new transport has not been told the peers
		}
		if (lerr == nil) != (linkErr == nil) {
			if lerr != nil {
				log.Warn("uplink trouble", "err", lerr)
			} else {
				log.Info("uplink back", "iface", uplink.Name, "ifindex", uplink.Index)
			}
		}
		linkErr = lerr
		self, err := localIdentity(uplink)
		if err != nil {
			log.Warn("reading own addresses", "err", err)
		}
		set := registry.Snapshot()
		if set != told {
			// l2 resolves MACs ahead of the first relay, and the loop guard
			// knows a peer's copies by its MAC from the start.
			sender.SetPeers(set.All())
			told = set
		}
		// Unresolved before PeerMACs: if nothing was missing then, the MACs
		// read next are complete and the view built from them is armed.
		missing := unresolvedPeers(sender)
		path.SetView(policy.NewView(self.addrs, self.macs, set, sender.PeerMACs()))
		if linkErr != nil {
			missing = linkErr
		}
		report(missing)
		for source, n := range registry.Counts() {
			m.Peers.WithLabelValues(source).Set(float64(n))
		}
		m.PeersTotal.Set(float64(set.Len()))
		if set.Len() != last {
			log.Info("peers", "count", set.Len())
			last = set.Len()
		}
		wait := t.C
		if missing != nil {
			// Poll fast until every peer MAC is in the view: the l2 loop guard
			// depends on them.
			wait = time.After(50 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-registry.Changed():
		case <-wait:
		}
	}
}

// unresolvedPeers reports peers whose MAC the transport still lacks (l2 only).
func unresolvedPeers(sender *reopenable) error {
	missing := sender.Unresolved()
	if len(missing) == 0 {
		return nil
	}
	addrs := make([]string, 0, len(missing))
	for a := range missing {
		addrs = append(addrs, a.String())
	}
	slices.Sort(addrs)
	return fmt.Errorf("no MAC yet for %d peer(s): %s", len(addrs), strings.Join(addrs, ", "))
}

var errNoView = errors.New("peer view not built yet")

// peerAware is implemented by transports that prepare per-peer state (l2: MACs).
type peerAware interface{ SetPeers([]peers.Peer) }

func serve(cfg config.Config, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) ([]*http.Server, error) {
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	var servers []*http.Server
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{
		{net.JoinHostPort(cfg.MetricsAddress, strconv.Itoa(cfg.MetricsPort)), metricsMux},
		{net.JoinHostPort(cfg.HealthAddress, strconv.Itoa(cfg.HealthPort)), checks.Handler()},
	} {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			shutdown(servers)
			return nil, fmt.Errorf("listening on %s: %w", s.addr, err)
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "addr", s.addr, "err", err)
			}
		}()
	}
	return servers, nil
}

func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}
