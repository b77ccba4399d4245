// Package daemon wires go-pmtud together. Run builds the components in the
// order the node needs them (lock, uplinks, transport, packet path, tunnel
// receiver, HTTP, capture before the firewall rule that feeds it, peers),
// runs them together until told to stop or until one fails, and takes
// them down in reverse order. Each component owns its retries and its
// statistics:
//
//	uplinkFollower  finds the uplinks and follows route and link changes
//	viewKeeper      who is who: own addresses and MACs, peers and their state
//	captureRunner   NFLOG -> relay.Queue, relay.Flush per receive (the listener restarts itself)
//	firewallKeeper  the nftables table: install, verify, follow uplinks, remove
//	httpServers     /metrics, /healthz, /readyz
//	kubernetes      the Node watch feeding the peer registry
//	tunnel          the tunnel transport's receiving end
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/fanout"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/inject"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/relay"
	"github.com/go-pmtud/go-pmtud/internal/transport"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// Run runs the daemon until ctx is cancelled. A returned error means the
// process should exit non-zero.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d := &daemon{cfg: cfg, log: log, m: metrics.New(cfg.Transport), checks: health.New()}
	defer d.close()
	if err := d.build(); err != nil {
		return err
	}
	g := newGroup(ctx)
	for _, run := range d.components {
		g.Go(run)
	}
	log.Info("relaying", "peers", d.registry.Snapshot().Len(), "uplinks", d.follower.Current().String())
	err := g.Wait()
	log.Info("stopping")
	return err
}

// daemon holds the components while Run builds, runs and closes them.
type daemon struct {
	cfg    config.Config
	log    *slog.Logger
	m      *metrics.Metrics
	checks *health.Checker

	kind       transport.Kind
	keys       *tunnelwire.KeyFile // tunnel: signs and verifies; nil otherwise or insecure
	tunnel     *inject.Receiver    // tunnel: the receiving end; nil otherwise
	registry   *peers.Registry
	status     *statusSource
	services   atomic.Pointer[fanout.Table] // from the Service watch; nil: none
	capture    packetSource                 // for /status
	fw         *firewallKeeper              // nil with --firewall none
	sender     *reopenable
	path       *relay.Relay
	follower   *uplinkFollower
	view       *viewKeeper
	components []func(context.Context) error
	closers    []func() // run in reverse order by close
}

func (d *daemon) onClose(fn func()) { d.closers = append(d.closers, fn) }

func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func (d *daemon) build() error {
	for _, step := range []func() error{
		d.buildUplinksAndTransport, d.buildPath, d.buildTunnel, d.buildHTTP,
		d.buildCapture, d.buildFirewall, d.buildPeers, d.buildView,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	d.checks.Live("process", func() error { return nil })
	d.components = append(d.components, d.releaseStartupPages)
	return nil
}

func (d *daemon) buildUplinksAndTransport() error {
	kind, err := transport.Lookup(d.cfg.Transport)
	if err != nil {
		return err
	}
	d.kind = kind
	first, err := findUplinks(netlinkLinks{}, d.cfg.Ifaces)
	if err != nil {
		return err
	}
	// Before anything that changes the node (and after the checks that
	// need nothing of it): a second instance must not touch the first
	// one's table.
	lock, err := lockInstance()
	if err != nil {
		return err
	}
	d.onClose(func() { lock.Close() })
	d.log.Info("starting", "uplinks", first.String(), "transport", kind.Name, "nflog_group", d.cfg.NFLOGGroup,
		"firewall", d.cfg.Firewall, "dry_run", d.cfg.DryRun, "nodename", d.cfg.NodeName)
	self, err := localIdentity(first)
	if err != nil {
		return err
	}
	d.registry = peers.NewRegistry(self.addrs...)
	d.status = newStatusSource(d.cfg, d.m, d.checks, d.registry)
	if d.keys, err = openTunnelKeys(d.cfg, d.m, d.checks, d.log); err != nil {
		return err
	}
	s, err := d.openSender(first)
	if err != nil {
		return err
	}
	d.sender = &reopenable{cur: s}
	d.onClose(func() { d.sender.Close() })
	d.follower = newUplinkFollower(netlinkLinks{}, d.cfg.Ifaces, first, d.log)
	d.components = append(d.components, d.follower.Run)
	return nil
}

func (d *daemon) openSender(up uplinks) (transport.Sender, error) {
	s, err := d.kind.Open(transport.Options{Uplinks: up.names(), TTL: d.cfg.TTL, TunnelPort: d.cfg.TunnelPort,
		TunnelKeys: keySource(d.keys), TunnelInsecure: d.cfg.TunnelInsecure, Logger: d.log.With("component", "transport")})
	if err != nil {
		return nil, fmt.Errorf("transport %s: %w", d.kind.Name, err)
	}
	return s, nil
}

func (d *daemon) buildPath() error {
	pc := d.cfg.Policy
	pc.Memory = offheapSlots{}
	engine, err := policy.New(pc)
	if err != nil {
		return err
	}
	d.onClose(engine.Close)
	d.path = relay.New(relay.Config{
		Limits: d.limits(), Engine: engine, Sender: recordingSender{Sender: d.sender, ring: &d.status.ring},
		Metrics: d.m, DryRun: d.cfg.DryRun, Logger: d.log.With("component", "relay"),
		SendError: func(p peers.Peer, err error) { d.status.peerErrs.record(p.Name, err) },
		// Once per burst, when it has passed: a collection, and the heap
		// pages the burst grew go back to the kernel now rather than over
		// minutes (docs/benchmarks.md: 1 MB after an overload sweep).
		GaveBack: debug.FreeOSMemory,
	})
	return nil
}

func (d *daemon) limits() ptb.Limits {
	if d.cfg.Strict {
		return ptb.StrictLimits()
	}
	return ptb.DefaultLimits()
}

func (d *daemon) buildTunnel() error {
	// Service addresses learned by the Service watch (targeted fan-out)
	// are VIPs this node may DNAT: copies about them may be injected.
	isVIP := func(a netip.Addr) bool { return d.services.Load().HasAddr(a) }
	r, err := openTunnelReceiver(d.cfg, d.registry, d.keys, isVIP, d.limits(), d.m, d.checks, d.log)
	if err != nil || r == nil {
		return err
	}
	d.tunnel = r
	d.onClose(func() { r.Close() })
	d.path.SetTunnelIfIndex(uint32(r.IfIndex()))
	d.components = append(d.components, runTunnelReceiver(r, d.keys, d.log))
	return nil
}

func (d *daemon) buildHTTP() error {
	h, err := newHTTPServers(d.cfg, d.m, d.checks, d.status, d.log)
	if err != nil {
		return err
	}
	d.onClose(h.close)
	d.onClose(startPprof(d.cfg.PprofAddress, d.log))
	d.components = append(d.components, h.Run)
	return nil
}

// idleAfter is how long capture waits without packets before the path
// gives back what a burst grew (Relay.Idle), and then how often it tries
// again while there is more: a wakeup a second, and only after traffic.
const idleAfter = time.Second

// buildCapture binds the NFLOG group before the rule exists: a rule logging
// to an unbound group loses packets.
func (d *daemon) buildCapture() error {
	l, err := capture.Open(capture.Config{Group: d.cfg.NFLOGGroup, Bufsize: d.cfg.CaptureBuffer, BusyPoll: d.cfg.CaptureBusyPoll,
		Idle: d.path.Idle, IdleAfter: idleAfter, Logger: d.log.With("component", "capture")})
	if err != nil {
		return err
	}
	d.onClose(func() { l.Close() })
	d.capture = l
	c := &captureRunner{src: l, group: d.cfg.NFLOGGroup, m: d.m, handle: func(p *capture.Packet) { d.path.Queue(p) }, flush: d.path.Flush}
	c.register(d.checks)
	d.components = append(d.components, c.Run)
	return nil
}

func (d *daemon) buildFirewall() error {
	if d.cfg.Firewall == "none" {
		d.log.Info("firewall rule left to the operator", "nflog_group", d.cfg.NFLOGGroup)
		return nil
	}
	names := d.follower.Current().names()
	fw, err := newFirewallKeeper(d.cfg, names, d.m, d.log)
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	if err := fw.Install(); err != nil {
		return fmt.Errorf("installing nftables table: %w", err)
	}
	d.log.Info("firewall table installed", "table", "inet go-pmtud", "iface", names)
	d.onClose(fw.Close)
	d.fw = fw
	d.checks.Ready("firewall", fw.Err)
	d.follower.subscribe(func(up uplinks) { fw.SetIfaces(up.names()) })
	d.components = append(d.components, fw.Run)
	if d.tunnel != nil {
		// The tunnel port is filtered in the kernel: peers only, to the
		// node's own addresses only (not the VIPs).
		registerTunnelFilterMetrics(fw.nft, d.m)
		d.components = append(d.components, func(ctx context.Context) error {
			return keepTunnelFilter(ctx, fw.nft, d.registry, d.follower.Current, d.cfg.RelayFor, d.log)
		})
	}
	return nil
}

func (d *daemon) buildPeers() error {
	if len(d.cfg.Peers) > 0 {
		d.registry.Update("static", d.cfg.Peers)
	}
	watch, err := kubernetesWatch(d.cfg, d.registry, d.m, d.checks, d.log)
	if err != nil || watch == nil {
		return err
	}
	d.components = append(d.components, watch)
	if d.cfg.TargetedFanout {
		svc, err := serviceWatch(d.cfg, d.m, d.checks, d.log, func(t *fanout.Table) {
			d.services.Store(t)
			d.path.SetFanout(t)
		})
		if err != nil {
			return err
		}
		d.components = append(d.components, svc)
	}
	return nil
}

func (d *daemon) buildView() error {
	d.view = newViewKeeper(d.kind, d.sender, d.registry, d.follower.Current, d.path.SetView, d.m, d.log)
	// No peers is reported, not failed: a one-node cluster has nobody to
	// relay to, and a never-ready pod would hang every DaemonSet rollout
	// (the gopmtud_peers_total == 0 alert is the signal for that case).
	d.checks.ReadyDetail("peers", d.view.Ready, d.view.Detail)
	var reopenErr atomic.Pointer[error]
	d.checks.ReadyDetail("uplinks", func() error {
		if err := d.follower.Err(); err != nil {
			return err
		}
		if p := reopenErr.Load(); p != nil {
			return *p
		}
		return nil
	}, func() string { return "capturing on " + d.follower.Current().String() })
	d.follower.subscribe(func(up uplinks) {
		if d.kind.Link {
			err := d.reopen(up)
			if err != nil {
				d.log.Error("reopening the transport on the new uplinks", "err", err)
				reopenErr.Store(&err)
			} else {
				reopenErr.Store(nil)
			}
		}
		d.view.Kick()
	})
	d.components = append(d.components, d.view.Run)
	d.status.set(func() (bool, capture.Stats) { return d.capture.Up(), d.capture.Stats() }, func() (bool, error) {
		if d.fw == nil {
			return false, nil
		}
		err := d.fw.Err()
		return err == nil, err
	}, d.sender.PeerStates)
	return nil
}

// reopen swaps in a link transport opened on the new uplinks.
func (d *daemon) reopen(up uplinks) error {
	next, err := d.openSender(up)
	if err != nil {
		return err
	}
	if err := d.sender.swap(next); err != nil {
		d.log.Debug("closing the old transport", "err", err)
	}
	d.log.Info("transport reopened on the uplinks", "transport", d.kind.Name, "uplinks", up.String())
	return nil
}
