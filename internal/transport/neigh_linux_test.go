//go:build linux

package transport

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// lockedBuffer is a log sink safe for the refresher goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitStates waits, on StateChanged, until PeerStates satisfies ok.
func waitStates(t *testing.T, l *L2, what string, timeout time.Duration, ok func(map[string]PeerState) bool) map[string]PeerState {
	t.Helper()
	deadline := time.After(timeout)
	for {
		m := map[string]PeerState{}
		for _, ps := range l.PeerStates() {
			m[ps.Name] = ps
		}
		if ok(m) {
			return m
		}
		select {
		case <-l.StateChanged():
		case <-time.After(100 * time.Millisecond): // peers not yet seen by the refresher
		case <-deadline:
			t.Fatalf("%s: not within %v; states: %+v", what, timeout, m)
		}
	}
}

func stateIs(m map[string]PeerState, name string, s NeighState) bool {
	ps, ok := m[name]
	return ok && ps.State == s
}

// TestL2DeadPeerBacksOff: a peer nobody answers for is retried with a
// growing gap even while every relay asks for it, turns "failed" after
// three attempts, and is logged on each change; a peer in another subnet is
// "not_on_link" with the gateway as the reason; the live peer is served.
func TestL2DeadPeerBacksOff(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[0], l.nodes[1]
	logs := &lockedBuffer{}
	var l2 *L2
	in(t, n1.ns, func() error {
		var err error
		l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Hour,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		return err
	})
	t.Cleanup(func() { l2.Close() })

	dead := peers.Peer{Name: "dead", V4: netip.MustParseAddr("10.77.0.9")}
	far := peers.Peer{Name: "far", V4: netip.MustParseAddr("10.88.0.1")}
	live := n2.peer(4)
	to := []peers.Peer{live, dead, far}
	l2.SetPeers(to)
	m := ptbMessage(4, netip.MustParseAddr("198.51.100.77"), 5077, 1400)

	// Relay as a busy node would, every 10 ms, for 6.5 s.
	start := time.Now()
	sent := 0
	for time.Since(start) < 6500*time.Millisecond {
		sent += l2.Send(m, to, nil)
		time.Sleep(10 * time.Millisecond)
	}
	// Attempts: the live peer once; the dead one at 0, 1 s, 3 s (next 7 s).
	// Polling at a fixed 1 s, as before, made 7 or 8.
	if a := l2.nbs[0].attempts.Load(); a > 4 {
		t.Errorf("%d resolution attempts in 6.5 s, want at most 4 (1 for the live peer, 3 backing off)", a)
	} else {
		t.Logf("%d resolution attempts in 6.5 s; %d frames to the live peer", a, sent)
	}
	if sent == 0 {
		t.Error("the live peer received nothing")
	}
	st := waitStates(t, l2, "final states", 2*time.Second, func(m map[string]PeerState) bool {
		return stateIs(m, n2.ns, StateResolved) && stateIs(m, "dead", StateFailed) && stateIs(m, "far", StateNotOnLink)
	})
	if err := st["far"].Err; !errors.Is(err, ErrNotOnLink) || !strings.Contains(err.Error(), "gateway") {
		t.Errorf("far peer's reason: %v", err)
	} else {
		t.Logf("far: %v", err)
	}
	if !errors.Is(st["dead"].Err, ErrNoMAC) {
		t.Errorf("dead peer's reason: %v", st["dead"].Err)
	}
	for _, want := range []string{"level=WARN msg=\"l2: peer state changed\" peer=dead addr=10.77.0.9 state=failed",
		"peer=far addr=10.88.0.1 state=not_on_link", "peer=" + n2.ns + " addr=" + n2.v4.String() + " state=resolved"} {
		if !strings.Contains(logs.String(), "l2: peer state changed") || !strings.Contains(logs.String(), want) {
			t.Errorf("no log line with %q:\n%s", want, logs.String())
		}
	}
	if macs := l2.PeerMACs(); !slices.Equal(macs, [][6]byte{n2.mac}) {
		t.Errorf("PeerMACs = %x, want [%x]", macs, n2.mac)
	}
}

// proxyLab is a segment where a router answers ARP and neighbour discovery
// for a subnet that is not on it (proxy ARP / proxy NDP), as Calico's and
// many fabrics' routers do.
//
//	n1 10.77.0.1 fd77::1 --+            r: proxy_arp, proxy_ndp    far
//	n2 10.77.0.2 fd77::2 --+-- br0 -- r eth0 10.77.0.254 fd77::fe
//	                                    eth1 10.88.0.254 fd88::fe -- 10.88.0.5 ...
//
// n1 believes 10.88.0.0/24 and fd88::/64 are on its link (routes "dev eth0"
// without a gateway), so it ARPs for them and r answers with its own MAC.
type proxyLab struct {
	n1, n2, r labNode
}

func newProxyLab(t *testing.T) *proxyLab {
	t.Helper()
	needRoot(t)
	prefix := fmt.Sprintf("pmtudpx-%04x", os.Getpid()&0xffff)
	br, far := prefix+"-br", prefix+"-far"
	p := &proxyLab{
		n1: labNode{ns: prefix + "-n1", v4: netip.MustParseAddr("10.77.0.1"), v6: netip.MustParseAddr("fd77::1")},
		n2: labNode{ns: prefix + "-n2", v4: netip.MustParseAddr("10.77.0.2"), v6: netip.MustParseAddr("fd77::2")},
		r:  labNode{ns: prefix + "-r", v4: netip.MustParseAddr("10.77.0.254"), v6: netip.MustParseAddr("fd77::fe")},
	}
	for _, n := range []string{br, far, p.n1.ns, p.n2.ns, p.r.ns} {
		run(t, "netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
		sysctls(t, n, map[string]string{"ipv6/conf/default/accept_dad": "0", "ipv6/conf/all/accept_dad": "0"})
		run(t, "-n", n, "link", "set", "lo", "up")
	}
	run(t, "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "-n", br, "link", "set", "br0", "up")
	for i, n := range []*labNode{&p.n1, &p.n2, &p.r} {
		v := fmt.Sprintf("v%d", i+1)
		run(t, "-n", br, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
		run(t, "-n", br, "link", "set", v, "master", "br0", "up")
		run(t, "-n", n.ns, "link", "set", "eth0", "up")
		run(t, "-n", n.ns, "addr", "add", n.v4.String()+"/24", "dev", "eth0")
		run(t, "-n", n.ns, "addr", "add", n.v6.String()+"/64", "dev", "eth0", "nodad")
		n.mac = linkMAC(t, n.ns, "eth0")
	}
	// The far side, and r answering for it on eth0 at once (no proxy delay).
	run(t, "-n", p.r.ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", far)
	run(t, "-n", p.r.ns, "link", "set", "eth1", "up")
	run(t, "-n", far, "link", "set", "eth0", "up")
	run(t, "-n", p.r.ns, "addr", "add", "10.88.0.254/24", "dev", "eth1")
	run(t, "-n", p.r.ns, "addr", "add", "fd88::fe/64", "dev", "eth1", "nodad")
	sysctls(t, p.r.ns, map[string]string{
		"ipv4/ip_forward": "1", "ipv4/conf/eth0/proxy_arp": "1", "ipv4/neigh/eth0/proxy_delay": "0",
		"ipv6/conf/all/forwarding": "1", "ipv6/conf/eth0/proxy_ndp": "1", "ipv6/neigh/eth0/proxy_delay": "0",
	})
	for _, a := range []string{"fd88::5", "fd88::6"} {
		run(t, "-n", p.r.ns, "-6", "neigh", "add", "proxy", a, "dev", "eth0")
	}
	for _, n := range []labNode{p.n1, p.n2} {
		run(t, "-n", n.ns, "route", "add", "10.88.0.0/24", "dev", "eth0")
		run(t, "-n", n.ns, "-6", "route", "add", "fd88::/64", "dev", "eth0")
		run(t, "-n", n.ns, "route", "add", "default", "via", p.r.v4.String())
		run(t, "-n", n.ns, "-6", "route", "add", "default", "via", p.r.v6.String())
	}
	return p
}

// sysctls writes /proc/sys/net/<key> inside ns.
func sysctls(t *testing.T, ns string, kv map[string]string) {
	t.Helper()
	in(t, ns, func() error {
		for k, v := range kv {
			if err := os.WriteFile("/proc/sys/net/"+k, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestL2ProxyARPSegment: peers that a router answers for resolve to the
// router's MAC. l2 must call them not_on_segment (by the gateway's MAC when
// there is one, by the shared MAC when there are several), keep that MAC out
// of PeerMACs (or the loop guard would drop every genuine PTB from the
// router as a peer's copy), send them nothing, and still serve the real
// peer on the segment, in both families.
func TestL2ProxyARPSegment(t *testing.T) {
	p := newProxyLab(t)
	var l2 *L2
	in(t, p.n1.ns, func() error {
		var err error
		l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Hour})
		return err
	})
	t.Cleanup(func() { l2.Close() })
	atRouter := sniff(t, p.r.ns)

	node2 := []peers.Peer{{Name: p.n2.ns, V4: p.n2.v4, V6: p.n2.v6}}
	far5 := []peers.Peer{{Name: "far5", V4: netip.MustParseAddr("10.88.0.5"), V6: netip.MustParseAddr("fd88::5")}}
	far6 := []peers.Peer{{Name: "far6", V4: netip.MustParseAddr("10.88.0.6"), V6: netip.MustParseAddr("fd88::6")}}

	check := func(t *testing.T, all []peers.Peer, farNames ...string) {
		l2.SetPeers(all)
		st := waitStates(t, l2, "states", 5*time.Second, func(m map[string]PeerState) bool {
			for _, n := range farNames {
				if !stateIs(m, n, StateNotOnSegment) {
					return false
				}
			}
			return stateIs(m, p.n2.ns, StateResolved)
		})
		for _, n := range farNames {
			if st[n].MAC != p.r.mac || !errors.Is(st[n].Err, ErrNotOnSegment) {
				t.Errorf("%s: %+v, want the router's MAC %x and ErrNotOnSegment", n, st[n], p.r.mac)
			}
		}
		if macs := l2.PeerMACs(); !slices.Equal(macs, [][6]byte{p.n2.mac}) {
			t.Errorf("PeerMACs = %x, want only n2's %x (the router's is %x)", macs, p.n2.mac, p.r.mac)
		}
		for _, f := range []uint8{4, 6} {
			to := all // l2 reaches every node by MAC, whatever the family
			el := &errLog{}
			m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.90", 6: "2001:db8:1::90"}[f]), 5090, 1400)
			if n := l2.Send(m, to, el.on(to)); n != 1 {
				t.Errorf("v%d: Send = %d frames, want 1 (n2 only); errors %v", f, n, el.errs)
			}
			for _, pe := range to[1:] {
				if err := el.get(pe.Addr()); !errors.Is(err, ErrNotOnSegment) {
					t.Errorf("v%d: %s reported %v, want ErrNotOnSegment", f, pe.Addr(), err)
				}
			}
		}
		if fr := atRouter.next(t, 300*time.Millisecond); fr != nil {
			t.Errorf("the router received a relayed frame: % x", fr[:min(len(fr), 34)])
		}
	}
	// One far peer: only the gateway's MAC gives it away.
	t.Run("one far peer", func(t *testing.T) { check(t, append(append([]peers.Peer{}, node2...), far5...), "far5") })
	// Two: they also share a MAC with each other.
	t.Run("two far peers", func(t *testing.T) {
		check(t, append(append(append([]peers.Peer{}, node2...), far5...), far6...), "far5", "far6")
	})
	t.Logf("n1 neighbours:\n%s", ipOut(t, "-n", p.n1.ns, "neigh", "show", "dev", "eth0"))
}

// TestL2PeerBackIsSeenAtOnce: a failed peer that comes back (here: its
// address appears on n3) is resolved by the kernel's managed entry, and
// l2 learns it from the kernel's notification, not at its next retry,
// which backoff has put seconds away.
func TestL2PeerBackIsSeenAtOnce(t *testing.T) {
	l := newLab(t)
	n1, n2, n3 := l.nodes[0], l.nodes[1], l.nodes[2]
	var l2 *L2
	in(t, n1.ns, func() error {
		var err error
		l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Hour})
		return err
	})
	t.Cleanup(func() { l2.Close() })
	back := peers.Peer{Name: "back", V4: netip.MustParseAddr("10.77.0.9")}
	l2.SetPeers([]peers.Peer{n2.peer(4), back})
	waitStates(t, l2, "the absent peer failed", 6*time.Second, func(m map[string]PeerState) bool {
		return stateIs(m, "back", StateFailed)
	})
	// Attempts at 0, 1 s, 3 s, 7 s; after the one at 7 s the next is 8 s
	// away, longer than the kernel takes to re-probe a failed managed entry
	// (every 5 s: the table's interval_probe_time_ms, not tunable per device).
	attempts := l2.nbs[0].attempts.Load()
	deadline := time.Now().Add(6 * time.Second)
	for l2.nbs[0].attempts.Load() == attempts && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	attempts = l2.nbs[0].attempts.Load()
	run(t, "-n", n3.ns, "addr", "add", "10.77.0.9/24", "dev", "eth0")
	start := time.Now()
	st := waitStates(t, l2, "the peer back resolved", 6500*time.Millisecond, func(m map[string]PeerState) bool {
		return stateIs(m, "back", StateResolved)
	})
	if st["back"].MAC != n3.mac {
		t.Errorf("back resolved to %x, want n3's %x", st["back"].MAC, n3.mac)
	}
	if a := l2.nbs[0].attempts.Load(); a != attempts {
		t.Errorf("resolved by a retry (%d attempts, %d before), not by the notification", a, attempts)
	}
	t.Logf("resolved %v after the address appeared, without a new attempt", time.Since(start).Round(time.Millisecond))
}

// TestL2KeepsMACThroughAFlush: when the kernel's entry for a resolved peer
// goes away (a link flap flushes the table, or an admin does), l2 re-creates
// it at once and keeps using the MAC it had meanwhile: the peer never turns
// unresolved, relays and the loop guard lose nothing.
func TestL2KeepsMACThroughAFlush(t *testing.T) {
	l := newLab(t)
	n1, n2 := l.nodes[0], l.nodes[1]
	logs := &lockedBuffer{}
	var l2 *L2
	in(t, n1.ns, func() error {
		var err error
		l2, err = NewL2(L2Config{Uplinks: []string{"eth0"}, NeighborRefresh: time.Hour,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		return err
	})
	t.Cleanup(func() { l2.Close() })
	l2.SetPeers([]peers.Peer{n2.peer(4)})
	waitStates(t, l2, "n2 resolved", 3*time.Second, func(m map[string]PeerState) bool { return stateIs(m, n2.ns, StateResolved) })
	before := len(logs.String())

	run(t, "-n", n1.ns, "neigh", "flush", "dev", "eth0")
	m := ptbMessage(4, netip.MustParseAddr("198.51.100.91"), 5091, 1400)
	el := &errLog{}
	to := []peers.Peer{n2.peer(4)}
	if n := l2.Send(m, to, el.on(to)); n != 1 {
		t.Errorf("Send right after the flush = %d, want 1; errors %v", n, el.errs)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !slices.Contains(managedNeighbours(t, n1.ns), n2.v4.String()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Contains(managedNeighbours(t, n1.ns), n2.v4.String()) {
		t.Fatalf("the flushed managed entry was not re-created:\n%s", ipOut(t, "-n", n1.ns, "neigh", "show", "dev", "eth0"))
	}
	time.Sleep(200 * time.Millisecond) // room for a state change to be logged
	if after := logs.String()[before:]; strings.Contains(after, "peer state changed") {
		t.Errorf("the peer's state changed through the flush:\n%s", after)
	}
	if macs := l2.PeerMACs(); !slices.Equal(macs, [][6]byte{n2.mac}) {
		t.Errorf("PeerMACs = %x, want [%x]", macs, n2.mac)
	}
}
