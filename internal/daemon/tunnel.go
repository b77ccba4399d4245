package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/firewall"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/inject"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// openTunnelKeys opens --tunnel-key-file when the tunnel transport is used
// (nil otherwise, or with --tunnel-insecure and no file: config.Validate
// refuses the tunnel without either). A bad file at start is fatal; a bad
// change later keeps the old keys, and readiness detail shows it.
func openTunnelKeys(cfg config.Config, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) (*tunnelwire.KeyFile, error) {
	if k, _ := transport.Lookup(cfg.Transport); !k.Receiver {
		return nil, nil
	}
	if cfg.TunnelKeyFile == "" {
		log.Warn("TUNNEL IS INSECURE: --tunnel-insecure and no --tunnel-key-file: datagrams are neither signed nor "+
			"authenticated; anyone who can forge a peer's address can make this node inject ICMP. For labs only",
			"component", "tunnel")
		checks.ReadyDetail("tunnel-keys", func() error { return nil }, func() string {
			return "INSECURE: --tunnel-insecure, no key file: datagrams are not authenticated (labs only)"
		})
		return nil, nil
	}
	k, err := tunnelwire.OpenKeyFile(cfg.TunnelKeyFile, log.With("component", "tunnel"), m.Registry)
	if err != nil {
		return nil, err
	}
	checks.ReadyDetail("tunnel-keys", func() error { return nil }, func() string {
		ring := k.Keyring()
		s := fmt.Sprintf("%d keys (%s), signing with %s", ring.Len(), strings.Join(ring.IDs(), ","), ring.IDs()[0])
		if err := k.Err(); err != nil {
			s += "; the key file's current content is refused, previous keys kept: " + err.Error()
		}
		return s
	})
	return k, nil
}

// keySource turns a possibly nil key file into a possibly nil interface.
func keySource(k *tunnelwire.KeyFile) transport.KeySource {
	if k == nil {
		return nil
	}
	return k
}

// The kernel's per-peer-address limit in front of the tunnel socket: twice
// the receiver's own per-peer bucket, so that bucket still decides (and
// counts) what a peer may inject, while a flood from one address is cut
// before it can fill the socket buffer all peers share.
const (
	tunnelSourceRate  = 2 * inject.DefaultPeerRate
	tunnelSourceBurst = 2 * inject.DefaultPeerBurst
)

// tunnelFilterPort is the port the firewall filters for the tunnel
// receiver (0: no receiver, no filter).
func tunnelFilterPort(cfg config.Config) uint16 {
	if k, _ := transport.Lookup(cfg.Transport); !k.Receiver {
		return 0
	}
	return uint16(cfg.TunnelPort)
}

// openTunnelReceiver opens the receiving end of the tunnel transport when
// it is ours (nil otherwise): peers' copies arrive on --tunnel-port and are
// injected through --tunnel-device. Only nodes using the tunnel transport
// run it, so no other node opens a port or creates a device; all nodes of
// a cluster must therefore use the same transport (during a change of
// transport, copies to not-yet-switched nodes are lost until they switch).
//
// Readiness includes it: the socket receiving and the device up, with the
// host setting that would defeat IPv4 injection in the detail.
func openTunnelReceiver(cfg config.Config, registry *peers.Registry, keys *tunnelwire.KeyFile, isVIP func(netip.Addr) bool, limits ptb.Limits, m *metrics.Metrics, checks *health.Checker, log *slog.Logger) (*inject.Receiver, error) {
	if k, _ := transport.Lookup(cfg.Transport); !k.Receiver {
		return nil, nil
	}
	names := &peerNames{reg: registry}
	var ks inject.KeySource
	if keys != nil {
		ks = keys
	}
	r, err := inject.Open(inject.Config{
		Port:   cfg.TunnelPort,
		Device: cfg.TunnelDevice,
		// Datagrams only from current peers: an atomic snapshot, so peers
		// that leave are refused at once.
		Peer:       names.lookup,
		Keys:       ks,
		Insecure:   cfg.TunnelInsecure,
		RelayFor:   cfg.RelayFor,
		IsVIP:      isVIP,
		Limits:     limits,
		Logger:     log.With("component", "tunnel"),
		Registerer: m.Registry,
	})
	if err != nil {
		return nil, err
	}
	checks.ReadyDetail("tunnel", r.Err, r.Detail)
	if cfg.Firewall == "none" {
		log.Warn("the tunnel port is not filtered in the kernel (--firewall none): datagrams from anybody, to any "+
			"address of the node, reach the receiver, which still authenticates each", "component", "tunnel")
	}
	return r, nil
}

// runTunnelReceiver returns a component that runs r, and the key file's
// watch, until ctx ends. If the socket fails, readiness turns red (r.Err)
// and the error is logged; relaying goes on.
func runTunnelReceiver(r *inject.Receiver, keys *tunnelwire.KeyFile, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if keys != nil {
			done := make(chan struct{})
			go func() { defer close(done); keys.Run(ctx, 0) }()
			defer func() { <-done }()
		}
		if err := r.Run(ctx); err != nil {
			log.Error("tunnel receiver stopped", "err", err)
		}
		return nil
	}
}

// peerNames maps a peer address, of either family, to its node name from
// the registry's current snapshot: O(log n), no allocation, and a peer
// that leaves is refused at once.
type peerNames struct{ reg *peers.Registry }

func (p *peerNames) lookup(a netip.Addr) (string, bool) {
	set := p.reg.Snapshot()
	i := set.Index(a)
	if i < 0 {
		return "", false
	}
	return set.All()[i].Name, true
}

// keepTunnelFilter keeps the firewall's tunnel sets in step: the peers'
// addresses, and the node's own addresses the port is reachable on. It
// looks every second; the sets are rewritten only on a change (or after a
// failed write).
func keepTunnelFilter(ctx context.Context, fw *firewall.Table, registry *peers.Registry, uplinks func() uplinks, relayFor []netip.Prefix, log *slog.Logger) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastPeers, lastAddrs []netip.Addr
	synced := false
	for {
		ps := registry.Snapshot().Addrs()
		addrs, err := nodeAddrs(uplinks().names(), relayFor)
		if err != nil {
			log.Warn("listing the uplink's addresses for the tunnel filter", "err", err)
		}
		if err == nil && (!synced || !slices.Equal(ps, lastPeers) || !slices.Equal(addrs, lastAddrs)) {
			perr, aerr := fw.SetTunnelPeers(ps), fw.SetTunnelAddrs(addrs)
			synced = perr == nil && aerr == nil
			if synced {
				lastPeers, lastAddrs = ps, addrs
				log.Info("tunnel filter updated", "peers", len(ps), "node_addresses", addrs)
			} else {
				log.Error("updating the tunnel filter", "peers_err", perr, "addrs_err", aerr)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// nodeAddrs are the addresses the tunnel port is reachable on: the
// uplinks' addresses that carry a subnet (not /32 or /128: the form VIPs
// take when an agent such as kube-vip or keepalived adds them) and are
// outside --relay-for. Link-local addresses are left out: peers know each
// other by routable addresses.
func nodeAddrs(uplinks []string, relayFor []netip.Prefix) ([]netip.Addr, error) {
	var list []netlink.Addr
	for _, name := range uplinks {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return nil, err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return nil, err
		}
		list = append(list, addrs...)
	}
	var out []netip.Addr
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, bits := a.Mask.Size()
		if !ok || ones == bits || ip.IsLinkLocalUnicast() {
			continue
		}
		ip = ip.Unmap()
		if !slices.ContainsFunc(relayFor, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// registerTunnelFilterMetrics exports the kernel filter's drop counters as
// gopmtud_tunnel_filtered_total{reason}, read from nftables at each scrape.
func registerTunnelFilterMetrics(fw *firewall.Table, m *metrics.Metrics) {
	for _, r := range []struct {
		reason string
		count  func(firewall.TunnelDropCounts) uint64
	}{
		{"not_peer", func(n firewall.TunnelDropCounts) uint64 { return n.NotPeer }},
		{"not_node_address", func(n firewall.TunnelDropCounts) uint64 { return n.NotNodeAddr }},
		{"peer_rate", func(n firewall.TunnelDropCounts) uint64 { return n.PeerRate }},
	} {
		m.Registry.MustRegister(expo.NewCounterFunc(expo.Opts{
			Name: "gopmtud_tunnel_filtered_total",
			Help: "Datagrams to the tunnel port dropped by the kernel filter before the socket: from a non-peer, " +
				"to an address that is not the node's own (a VIP), or from a peer address over its rate.",
			ConstLabels: map[string]string{"reason": r.reason},
		}, func() float64 {
			n, err := fw.TunnelDrops()
			if err != nil {
				return 0
			}
			return float64(r.count(n))
		}))
	}
}
