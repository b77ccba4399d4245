package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/firewall"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
)

// firewallRefresh is how often the table is verified: somebody may have
// flushed the ruleset (a firewall reload by another agent).
const firewallRefresh = 10 * time.Second

// ruleTable is what the keeper needs of the nftables table; a test fakes it.
type ruleTable interface {
	Install() error
	Verify() error
	Remove() error
	SetIfaces([]string) error
}

// firewallKeeper owns go-pmtud's table: installed before Run, verified and
// reinstalled when it changed under us, re-pointed at new uplinks, and
// removed by Close.
type firewallKeeper struct {
	table ruleTable
	nft   *firewall.Table // the real table behind ruleTable (the tunnel filter's sets)
	m     *metrics.Metrics
	log   *slog.Logger
	every time.Duration

	ifaces chan []string // new uplinks, latest wins

	mu  sync.Mutex
	err error
}

func newFirewallKeeper(cfg config.Config, ifaces []string, m *metrics.Metrics, log *slog.Logger) (*firewallKeeper, error) {
	t, err := firewall.New(firewall.Config{Ifaces: ifaces, Group: cfg.NFLOGGroup, RatePerSecond: cfg.CaptureRate,
		Burst: cfg.CaptureBurst, SourceRatePerSecond: cfg.CaptureSourceRate, TunnelPort: tunnelFilterPort(cfg),
		TunnelSourceRate: tunnelSourceRate, TunnelSourceBurst: tunnelSourceBurst})
	if err != nil {
		return nil, err
	}
	return &firewallKeeper{table: t, nft: t, m: m, log: log, every: firewallRefresh, ifaces: make(chan []string, 1)}, nil
}

// Install puts the table in place at start.
func (f *firewallKeeper) Install() error {
	if err := f.table.Install(); err != nil {
		return err
	}
	f.m.FirewallUp.Set(1)
	return nil
}

// SetIfaces asks Run to re-point the rules at new uplinks.
func (f *firewallKeeper) SetIfaces(names []string) {
	select {
	case <-f.ifaces: // drop a stale pending list
	default:
	}
	f.ifaces <- names
}

func (f *firewallKeeper) Run(ctx context.Context) error {
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case names := <-f.ifaces:
			f.reinstall(names)
		case <-t.C:
			f.verify()
		}
	}
}

func (f *firewallKeeper) reinstall(names []string) {
	if err := f.table.SetIfaces(names); err != nil {
		f.report(err)
		return
	}
	err := f.table.Install()
	if err == nil {
		f.log.Info("firewall rules follow the uplinks", "iface", names)
	}
	f.report(err)
}

func (f *firewallKeeper) verify() {
	err := f.table.Verify()
	if err == nil {
		f.report(nil)
		return
	}
	f.log.Warn("firewall table changed under us, reinstalling", "err", err)
	f.report(f.table.Install())
}

func (f *firewallKeeper) report(err error) {
	if err != nil {
		f.log.Error("firewall table", "err", err)
		f.m.FirewallUp.Set(0)
	} else {
		f.m.FirewallUp.Set(1)
	}
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Err is the readiness check: the last install or verify failed.
func (f *firewallKeeper) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Close removes the table.
func (f *firewallKeeper) Close() {
	if err := f.table.Remove(); err != nil {
		f.log.Error("removing firewall table", "err", err)
		return
	}
	f.log.Info("firewall table removed")
}
