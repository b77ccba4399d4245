package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet/proc"
)

// Ports go-pmtud listens on inside each node (its defaults).
const (
	MetricsPort = proc.MetricsPort
	HealthPort  = proc.HealthPort
)

// Metrics is one scrape of a daemon's /metrics.
type Metrics = proc.Metrics

// DaemonConfig says how to run go-pmtud on the nodes.
type DaemonConfig struct {
	// Binary is the go-pmtud executable.
	Binary string
	// Transport is --transport: l2, broadcast, routed or tunnel.
	Transport string
	// Firewall is --firewall (default nftables: go-pmtud owns its rule).
	Firewall string
	// Args are extra flags appended to the lab's own.
	Args []string
	// ReadyTimeout bounds the wait for /readyz (default 10 s).
	ReadyTimeout time.Duration
}

// Daemon is one go-pmtud process running inside a node namespace.
type Daemon struct {
	*proc.Proc
	Node int
}

// stopGrace is how long a daemon gets after SIGTERM.
const stopGrace = 5 * time.Second

// Stop sends SIGTERM, then SIGKILL after 5 s; an error if it had to be
// killed or did not exit cleanly.
func (d *Daemon) Stop() error {
	if err := d.Proc.Stop(stopGrace); err != nil {
		return fmt.Errorf("%s: %w", NodeName(d.Node), err)
	}
	return nil
}

// Scrape reads the daemon's metrics, from a socket inside its node.
func (d *Daemon) Scrape(context.Context) (Metrics, error) {
	m, err := d.Proc.Scrape()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NodeName(d.Node), err)
	}
	return m, nil
}

// DaemonArgs is the command line the lab gives go-pmtud on node i. On the
// dual-homed fabric --iface is left out: empty means the interfaces of the
// default routes (both uplinks, once the daemon captures on a list).
func (l *Lab) DaemonArgs(i int, c DaemonConfig) []string {
	fw := c.Firewall
	if fw == "" {
		fw = "nftables"
	}
	var peers []string
	for j, p := range l.Peers(i) {
		// Named, so a node's two addresses are one peer.
		peers = append(peers, NodeName(l.peerIndex(i, j))+"="+p.String())
	}
	var args []string
	if l.Opts.Fabric != FabricDual {
		args = append(args, "--iface", ifUplink)
	}
	args = append(args,
		"--peers", strings.Join(peers, ","),
		"--nodename", NodeName(i),
		"--transport", c.Transport,
		"--ttl", "64",
		"--nflog-group", "33",
		"--metrics-port", strconv.Itoa(MetricsPort),
		"--health-port", strconv.Itoa(HealthPort),
		"--firewall", fw,
		"--log-format", "json",
		// Static peers only: the lab has no API server, whatever the
		// environment says.
		"--kubernetes", "false",
	)
	if c.Transport == "tunnel" {
		args = append(args, l.tunnelKeyArgs()...)
	}
	return append(args, c.Args...)
}

// StartDaemons runs go-pmtud on every node and waits until each reports
// ready. On failure the daemons already started are stopped.
func (l *Lab) StartDaemons(ctx context.Context, c DaemonConfig) ([]*Daemon, error) {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	var ds []*Daemon
	for i, n := range l.Nodes {
		p, err := proc.Start(n.Do, c.Binary, l.DaemonArgs(i, c), nil)
		if err != nil {
			l.stopDaemons(ds)
			return nil, fmt.Errorf("start go-pmtud in %s: %w", n.Name, err)
		}
		ds = append(ds, &Daemon{Proc: p, Node: i})
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.stopDaemons(ds)
		return nil, errors.New("lab closed")
	}
	l.daemons = append(l.daemons, ds...)
	l.mu.Unlock()
	for _, d := range ds {
		if err := d.WaitReady(ctx, c.ReadyTimeout); err != nil {
			l.StopDaemons()
			return nil, fmt.Errorf("%s: %w", NodeName(d.Node), err)
		}
	}
	return ds, nil
}

// StopDaemons stops every daemon of the lab (SIGTERM, SIGKILL after 5 s).
func (l *Lab) StopDaemons() error {
	l.mu.Lock()
	ds := l.daemons
	l.daemons = nil
	l.mu.Unlock()
	return l.stopDaemons(ds)
}

func (l *Lab) stopDaemons(ds []*Daemon) error {
	var errs []error
	for _, d := range ds {
		if err := d.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func tail(s string, lines int) string { return proc.Tail(s, lines) }
