package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/go-pmtud/go-pmtud/internal/capture"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

var quiet = slog.New(slog.DiscardHandler)

func TestGroupFirstErrorStopsEveryComponent(t *testing.T) {
	g := newGroup(context.Background())
	boom := errors.New("boom")
	stopped := make(chan struct{})
	g.Go(func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	g.Go(func(context.Context) error { return boom })
	if err := g.Wait(); !errors.Is(err, boom) {
		t.Fatalf("Wait = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Wait returned before the other component stopped")
	}
}

func TestGroupStopIsNotAnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroup(ctx)
	g.Go(func(ctx context.Context) error { <-ctx.Done(); return errors.New("late error after stop") })
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait after cancel = %v, want nil", err)
	}
}

// fakeLinks is a kernel with a settable routing table and interfaces.
type fakeLinks struct {
	mu     sync.Mutex
	routes []netlink.Route
	links  []net.Interface
	err    error
}

func (f *fakeLinks) defaultRoutes() ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes, f.err
}

func (f *fakeLinks) find(match func(net.Interface) bool) (*net.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if match(l) {
			return &l, nil
		}
	}
	return nil, errors.New("no such interface")
}

func (f *fakeLinks) byName(n string) (*net.Interface, error) {
	return f.find(func(l net.Interface) bool { return l.Name == n })
}

func (f *fakeLinks) byIndex(i int) (*net.Interface, error) {
	return f.find(func(l net.Interface) bool { return l.Index == i })
}

func link(name string, index int, mac byte) net.Interface {
	return net.Interface{Name: name, Index: index, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, mac}}
}

func cidr(s string) *net.IPNet {
	_, n, _ := net.ParseCIDR(s)
	return n
}

// A dual-homed node: an IPv4 multipath default over eth0 and eth1, an IPv6
// default over eth2, and a more specific route that is not a default.
func dualHomed() *fakeLinks {
	return &fakeLinks{
		links: []net.Interface{link("eth0", 2, 1), link("eth1", 3, 2), link("eth2", 4, 3), link("lo", 1, 0)},
		routes: []netlink.Route{
			{MultiPath: []*netlink.NexthopInfo{{LinkIndex: 2}, {LinkIndex: 3}}},
			{Dst: cidr("::/0"), LinkIndex: 4},
			{Dst: cidr("10.0.0.0/8"), LinkIndex: 1},
		},
	}
}

func TestFindUplinksTakesEveryDefaultRouteInterface(t *testing.T) {
	up, err := findUplinks(dualHomed(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := up.names(); !slices.Equal(got, []string{"eth0", "eth1", "eth2"}) {
		t.Fatalf("uplinks = %v, want eth0 eth1 eth2 (every multipath nexthop, both families)", got)
	}
	if len(up.macs()) != 3 {
		t.Fatalf("MACs = %v, want one per uplink for the loop guard", up.macs())
	}
}

func TestFindUplinksByName(t *testing.T) {
	up, err := findUplinks(dualHomed(), []string{"eth1", "eth0"})
	if err != nil || !slices.Equal(up.names(), []string{"eth0", "eth1"}) {
		t.Fatalf("named uplinks = %v, %v", up.names(), err)
	}
	if _, err := findUplinks(dualHomed(), []string{"eth9"}); err == nil {
		t.Fatal("an unknown --iface was accepted")
	}
	if _, err := findUplinks(&fakeLinks{}, nil); err == nil {
		t.Fatal("no default route and no --iface was accepted")
	}
}

func TestFollowerTellsSubscribersOfNewUplinks(t *testing.T) {
	src := dualHomed()
	first, _ := findUplinks(src, nil)
	f := newUplinkFollower(src, nil, first, quiet)
	var got []uplinks
	f.subscribe(func(u uplinks) { got = append(got, u) })
	f.check()
	if len(got) != 0 {
		t.Fatalf("told of %d changes while nothing changed", len(got))
	}
	src.mu.Lock()
	src.links[1] = link("eth1", 7, 2) // eth1 deleted and recreated
	src.routes[0].MultiPath[1].LinkIndex = 7
	src.mu.Unlock()
	f.check()
	if len(got) != 1 || got[0][1].Index != 7 || f.Current()[1].Index != 7 {
		t.Fatalf("after eth1 was recreated: told %v, current %v", got, f.Current())
	}
	src.mu.Lock()
	src.err = errors.New("netlink down")
	src.mu.Unlock()
	f.check()
	if f.Err() == nil || len(f.Current()) != 3 {
		t.Fatalf("a failed look must keep the last uplinks and say why: err %v, current %v", f.Err(), f.Current())
	}
}

// fakeTable records what the keeper did to the table.
type fakeTable struct {
	verifyErr error
	installs  int
	ifaces    []string
	removed   bool
}

func (f *fakeTable) Install() error             { f.installs++; return nil }
func (f *fakeTable) Verify() error              { return f.verifyErr }
func (f *fakeTable) Remove() error              { f.removed = true; return nil }
func (f *fakeTable) SetIfaces(n []string) error { f.ifaces = n; return nil }

func TestFirewallKeeperReinstallsAndFollowsUplinks(t *testing.T) {
	tab := &fakeTable{}
	m := metrics.New("l2")
	fw := &firewallKeeper{table: tab, m: m, log: quiet, ifaces: make(chan []string, 1)}
	tab.verifyErr = errors.New("flushed")
	fw.verify()
	if tab.installs != 1 || fw.Err() != nil || m.FirewallUp.Value() != 1 {
		t.Fatalf("a flushed table must be reinstalled: installs %d, err %v", tab.installs, fw.Err())
	}
	fw.reinstall([]string{"eth0", "eth1"})
	if tab.installs != 2 || !slices.Equal(tab.ifaces, []string{"eth0", "eth1"}) {
		t.Fatalf("new uplinks: installs %d, ifaces %v", tab.installs, tab.ifaces)
	}
	fw.Close()
	if !tab.removed {
		t.Fatal("Close left the table")
	}
}

// fakeSender is a transport whose peer states a test sets.
type fakeSender struct {
	mu     sync.Mutex
	states []transport.PeerState
	told   []peers.Peer
}

func (f *fakeSender) Name() string { return "fake" }
func (f *fakeSender) Close() error { return nil }
func (f *fakeSender) Send(*ptb.Message, []peers.Peer, func(int, error)) int {
	return 0
}
func (f *fakeSender) SendBatch([]transport.Outgoing, func(int, int, error)) int { return 0 }
func (f *fakeSender) SetPeers(ps []peers.Peer)                                  { f.mu.Lock(); f.told = ps; f.mu.Unlock() }
func (f *fakeSender) PeerMACs() [][6]byte                                       { return nil }
func (f *fakeSender) StateChanged() <-chan struct{}                             { return nil }
func (f *fakeSender) PeerStates() []transport.PeerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states
}

func newTestView(kind transport.Kind, s transport.Sender, reg *peers.Registry, now *time.Time) (*viewKeeper, *metrics.Metrics) {
	m := metrics.New(kind.Name)
	v := newViewKeeper(kind, s, reg, func() uplinks { return nil }, func(*policy.View) {}, m, quiet)
	v.identity = func(uplinks) (identity, error) { return identity{}, nil }
	v.now = func() time.Time { return *now }
	v.started = *now
	return v, m
}

func TestDeadPeerIsADetailNotAFailure(t *testing.T) {
	dead, live := netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.2")
	remote := netip.MustParseAddr("10.1.0.3")
	reg := peers.NewRegistry()
	reg.Update("static", []peers.Peer{peers.PeerAt(dead), peers.PeerAt(live), {Name: "far", V4: remote}})
	s := &fakeSender{states: []transport.PeerState{
		{Name: "10.0.0.9", State: transport.StateUnresolved, Addr: dead, Err: transport.ErrNoMAC},
		{Name: "10.0.0.2", State: transport.StateResolved, Addr: live},
		{Name: "far", State: transport.StateNotOnLink, Addr: remote, Err: transport.ErrNotOnLink},
	}}
	now := time.Unix(1000, 0)
	v, m := newTestView(transport.Kind{Name: "l2", AnyFamily: true}, s, reg, &now)
	if v.Ready() == nil {
		t.Fatal("ready before the first view")
	}
	v.rebuild(reg.Snapshot())
	if v.Ready() == nil {
		t.Fatal("ready during the start grace while a peer still resolves: the loop guard may not be armed")
	}
	now = now.Add(startGrace)
	if err := v.Ready(); err != nil {
		t.Fatalf("a dead peer after the grace made readiness fail: %v", err)
	}
	d := v.Detail()
	for _, want := range []string{"3 peers: 1 of 3 peers resolved", "10.0.0.9 unresolved", "far not_on_link"} {
		if !strings.Contains(d, want) {
			t.Errorf("detail %q lacks %q", d, want)
		}
	}
	for state, want := range map[string]float64{"resolved": 1, "unresolved": 1, "not_on_link": 1, "failed": 0} {
		if got := m.PeerStates.WithLabelValues(state).Value(); got != want {
			t.Errorf("gopmtud_peer_states{state=%q} = %v, want %v", state, got, want)
		}
	}
}

func TestRoutedFamilyGapIsReported(t *testing.T) {
	reg := peers.NewRegistry()
	reg.Update("static", []peers.Peer{peers.PeerAt(netip.MustParseAddr("10.0.0.2")), peers.PeerAt(netip.MustParseAddr("10.0.0.3"))})
	now := time.Unix(1000, 0)
	v, _ := newTestView(transport.Kind{Name: "routed"}, &fakeSender{}, reg, &now)
	v.rebuild(reg.Snapshot())
	if d := v.Detail(); !strings.Contains(d, "2 of 2 peers have no IPv6 address") {
		t.Fatalf("detail %q does not say IPv6 messages cannot reach the IPv4-only peers", d)
	}
	v2, _ := newTestView(transport.Kind{Name: "l2", AnyFamily: true}, &fakeSender{}, reg, &now)
	v2.rebuild(reg.Snapshot())
	if d := v2.Detail(); strings.Contains(d, "no IPv6") {
		t.Fatalf("l2 reaches every family by MAC, yet the detail says %q", d)
	}
}

func TestViewKeeperTellsTheTransportThePeers(t *testing.T) {
	reg := peers.NewRegistry()
	s := &fakeSender{}
	now := time.Unix(1000, 0)
	v, _ := newTestView(transport.Kind{Name: "l2", AnyFamily: true}, s, reg, &now)
	v.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- v.Run(ctx) }()
	reg.Update("static", []peers.Peer{peers.PeerAt(netip.MustParseAddr("10.0.0.2"))})
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.told)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the transport was never told the new peer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// fakeSource is an NFLOG listener that fails when told to.
type fakeSource struct{ fail error }

func (f *fakeSource) RunBatched(ctx context.Context, _ func(*capture.Packet), _ func()) error {
	if f.fail != nil {
		return f.fail
	}
	<-ctx.Done()
	return nil
}
func (f *fakeSource) Up() bool             { return f.fail == nil }
func (f *fakeSource) Stats() capture.Stats { return capture.Stats{Received: 5, Lost: 2} }
func (f *fakeSource) Close() error         { return nil }

func TestCaptureRunner(t *testing.T) {
	m := metrics.New("l2")
	checks := health.New()
	c := &captureRunner{src: &fakeSource{fail: io.ErrUnexpectedEOF}, group: 33, m: m}
	c.register(checks)
	if err := c.Run(context.Background()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a listener that gave up must end the daemon: %v", err)
	}
	if m.CaptureUp.Value() != 0 {
		t.Fatal("capture_up still 1 after capture died")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok := &captureRunner{src: &fakeSource{}, group: 33, m: metrics.New("l2")}
	if err := ok.Run(ctx); err != nil {
		t.Fatalf("stopping is not an error: %v", err)
	}
}

// TestPeerStateLabelsAreTheTransportStates: the gauge's label values are
// the transport's states, every one of them, and no other.
func TestPeerStateLabelsAreTheTransportStates(t *testing.T) {
	var want []string
	for _, s := range transport.NeighStates() {
		want = append(want, s.String())
	}
	if !slices.Equal(metrics.PeerStateNames, want) {
		t.Fatalf("metrics.PeerStateNames = %v, transport states %v", metrics.PeerStateNames, want)
	}
}
