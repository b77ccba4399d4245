package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/firewall"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

const testGroup = 33

var (
	macA = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a}
	macB = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}
	vip4 = netip.MustParseAddr("192.0.2.2")
	vip6 = netip.MustParseAddr("2001:db8::2")
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for network namespaces and NFLOG")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetNS creates a named network namespace and returns its name and an fd;
// both go away when the test ends, pass or fail.
func newNetNS(t *testing.T) (string, int) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "pmtudcap-" + hex.EncodeToString(b)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return name, fd
}

// inNetNS runs f on a fresh OS thread that has entered the namespace. The
// thread stays locked and dies with its goroutine, so no other goroutine can
// ever run in the wrong namespace; sockets f creates stay in it.
func inNetNS(t *testing.T, fd int, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in namespace: %v", err)
	}
}

// lab is two namespaces joined by a veth pair: A sends, B runs the listener.
type lab struct {
	fdA, fdB  int
	ifindexB  uint32
	sender    *packet.Conn
	listener  *Listener
	installed *firewall.Table
}

func newLab(t *testing.T) *lab {
	t.Helper()
	needRoot(t)
	nameA, fdA := newNetNS(t)
	nameB, fdB := newNetNS(t)
	// Created directly inside the namespaces: the root namespace never sees them.
	run(t, "ip", "link", "add", "veth0", "address", macA.String(), "netns", nameA, "type", "veth",
		"peer", "name", "veth0", "address", macB.String(), "netns", nameB)
	for _, ns := range []string{nameA, nameB} {
		run(t, "ip", "-n", ns, "link", "set", "veth0", "up")
	}
	run(t, "ip", "-n", nameB, "addr", "add", vip4.String()+"/24", "dev", "veth0")
	run(t, "ip", "-n", nameB, "addr", "add", vip6.String()+"/64", "dev", "veth0", "nodad")

	l := &lab{fdA: fdA, fdB: fdB}
	inNetNS(t, fdB, func() error {
		ifi, err := net.InterfaceByName("veth0")
		if err == nil {
			l.ifindexB = uint32(ifi.Index)
		}
		return err
	})
	inNetNS(t, fdA, func() error {
		ifi, err := net.InterfaceByName("veth0")
		if err != nil {
			return err
		}
		l.sender, err = packet.Listen(ifi, packet.Raw, 0, nil) // protocol 0: send only
		return err
	})
	t.Cleanup(func() { l.sender.Close() })
	return l
}

func (l *lab) installFirewall(t *testing.T) {
	t.Helper()
	tab, err := firewall.New(firewall.Config{Ifaces: []string{"veth0"}, Group: testGroup}, nftables.WithNetNSFd(l.fdB))
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Install(); err != nil {
		t.Fatalf("install firewall in namespace: %v", err)
	}
}

// openListener opens the listener in B and runs it until the test ends.
func (l *lab) openListener(t *testing.T, bufsize int, handle func(*Packet)) *Listener {
	t.Helper()
	ln, err := Open(Config{Group: testGroup, NetNS: l.fdB, Bufsize: bufsize, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ln.Run(ctx, handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		ln.Close()
	})
	l.listener = ln
	return ln
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// send writes ip as an Ethernet frame from A to B's MAC.
func (l *lab) send(t *testing.T, ip []byte) {
	t.Helper()
	frame := make([]byte, 14, 14+len(ip))
	copy(frame[0:], macB)
	copy(frame[6:], macA)
	etype := uint16(0x0800)
	if ip[0]>>4 == 6 {
		etype = 0x86dd
	}
	binary.BigEndian.PutUint16(frame[12:], etype)
	frame = append(frame, ip...)
	if _, err := l.sender.WriteTo(frame, &packet.Addr{HardwareAddr: macB}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func ptb(router, vip netip.Addr, mtu uint32) []byte {
	client := netip.MustParseAddr("198.51.100.7")
	if router.Is6() {
		client = netip.MustParseAddr("2001:db8:ffff::7")
	}
	return ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: client, MTU: mtu, SrcPort: 80, DstPort: 40000})
}

// got is a copy of a delivered Packet: the listener reuses the original.
type got struct {
	Packet
	payload []byte
}

func collector() (func(*Packet), <-chan got) {
	ch := make(chan got, 16)
	return func(p *Packet) {
		g := got{Packet: *p, payload: bytes.Clone(p.Payload)}
		select {
		case ch <- g:
		default:
		}
	}, ch
}

// maxLatency is how long one message may take from the wire to the handler.
// The kernel's default batching holds a lone message for a full second.
const maxLatency = 200 * time.Millisecond

func (l *lab) sendAndExpect(t *testing.T, ch <-chan got, ip []byte) time.Duration {
	t.Helper()
	start := time.Now()
	l.send(t, ip)
	select {
	case g := <-ch:
		lat := g.Received.Sub(start)
		if !bytes.Equal(g.payload, ip) {
			t.Errorf("payload differs:\n got %x\nwant %x", g.payload, ip)
		}
		if !g.HasMAC || !bytes.Equal(g.SrcMAC[:], macA) || !bytes.Equal(g.DstMAC[:], macB) {
			t.Errorf("MACs: HasMAC %v src %x dst %x; want src %s dst %s", g.HasMAC, g.SrcMAC, g.DstMAC, macA, macB)
		}
		if g.IfIndex != l.ifindexB {
			t.Errorf("IfIndex %d, want %d", g.IfIndex, l.ifindexB)
		}
		if lat > maxLatency {
			t.Errorf("delivered after %v, want under %v (is the NFLOG queue threshold 1?)", lat, maxLatency)
		}
		return lat
	case <-time.After(2 * time.Second):
		t.Fatalf("packet not delivered within 2s")
	}
	return 0
}

func TestDeliversPTBPromptly(t *testing.T) {
	l := newLab(t)
	l.installFirewall(t)
	handle, ch := collector()
	ln := l.openListener(t, 0, handle)
	if !ln.Up() {
		t.Fatal("Up() = false after Open")
	}
	for _, tt := range []struct {
		name string
		ip   []byte
	}{
		{"ipv4", ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)},
		{"ipv6", ptb(netip.MustParseAddr("2001:db8::1"), vip6, 1400)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 3 {
				lat := l.sendAndExpect(t, ch, tt.ip)
				t.Logf("%s message %d: wire to handler %v", tt.name, i, lat)
			}
		})
	}
	// A packet the rule does not match (echo request) must not show up.
	echo := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	echo[20], echo[21] = 8, 0
	l.send(t, echo)
	select {
	case g := <-ch:
		t.Errorf("unexpected packet delivered: %x", g.payload)
	case <-time.After(100 * time.Millisecond):
	}
	if s := ln.Stats(); s.Received != 6 || s.Overruns != 0 || s.Lost != 0 || s.Restarts != 0 {
		t.Errorf("Stats = %+v, want 6 received and nothing else", s)
	}
}

// TestListenerSetsQueueThreshold proves the listener alone gets each message
// delivered at once, even under a rule without queue-threshold (an operator's
// own `log group 33`), where the kernel would otherwise batch for a second.
func TestListenerSetsQueueThreshold(t *testing.T) {
	l := newLab(t)
	c, err := nftables.New(nftables.WithNetNSFd(l.fdB))
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Name: "plain", Family: nftables.TableFamilyINet})
	policy := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "pre", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &policy})
	// nft add rule inet plain pre log group 33
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: testGroup},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	handle, ch := collector()
	l.openListener(t, 0, handle)
	for _, ip := range [][]byte{
		ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400),
		ptb(netip.MustParseAddr("2001:db8::1"), vip6, 1280),
	} {
		lat := l.sendAndExpect(t, ch, ip)
		t.Logf("without rule queue-threshold: wire to handler %v", lat)
	}
}

func TestGroupInUse(t *testing.T) {
	needRoot(t)
	_, fd := newNetNS(t)
	first, err := Open(Config{Group: testGroup, NetNS: fd})
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	defer first.Close()
	second, err := Open(Config{Group: testGroup, NetNS: fd})
	if err == nil {
		second.Close()
		t.Fatal("second Open on the same group succeeded")
	}
	if !errors.Is(err, ErrGroupInUse) || !strings.Contains(err.Error(), "nflog group 33 is already in use by another process") {
		t.Fatalf("second Open: %v; want ErrGroupInUse naming group 33", err)
	}
	t.Logf("error: %v", err)
	// Another group in the same namespace is free.
	other, err := Open(Config{Group: testGroup + 1, NetNS: fd})
	if err != nil {
		t.Fatalf("Open on another group: %v", err)
	}
	other.Close()
	// Once the first closes, the group is free again.
	first.Close()
	again, err := Open(Config{Group: testGroup, NetNS: fd})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
	if first.Up() {
		t.Error("Up() = true after Close")
	}
}

// TestSurvivesOverrun floods a tiny receive buffer while the handler is
// stuck, then checks the listener still hears a later single message.
func TestSurvivesOverrun(t *testing.T) {
	const burst = 3000
	l := newLab(t)
	l.installFirewall(t)
	var (
		release = make(chan struct{})
		once    sync.Once
		marker  = make(chan time.Time, 1)
	)
	const markerMTU = 1234
	l.openListener(t, 1, func(p *Packet) { // 1 byte: the kernel rounds up to its minimum
		once.Do(func() {
			select { // hold the first packet so the buffer fills
			case <-release:
			case <-time.After(5 * time.Second):
			}
		})
		if len(p.Payload) >= 28 && binary.BigEndian.Uint16(p.Payload[26:]) == markerMTU {
			select {
			case marker <- p.Received:
			default:
			}
		}
	})
	router := netip.MustParseAddr("192.0.2.1")
	flood := ptb(router, vip4, 1400)
	start := time.Now()
	for range burst {
		l.send(t, flood)
	}
	t.Logf("sent %d PTBs in %v", burst, time.Since(start))
	time.Sleep(50 * time.Millisecond) // let the kernel finish delivering what it can
	close(release)

	// Drain: wait until the count stops moving, bounded.
	ln := l.listener
	for deadline, last := time.Now().Add(3*time.Second), uint64(0); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n := ln.Stats().Received
		if n == last {
			break
		}
		last = n
	}
	s := ln.Stats()
	t.Logf("after the burst: %+v", s)
	if s.Overruns == 0 || s.Received >= burst {
		t.Errorf("Stats = %+v: want an overrun counted and messages dropped", s)
	}

	// Losses show as a gap in the NFLOG sequence once the next message
	// arrives, so send one and look for it.
	sent := time.Now()
	l.send(t, ptb(router, vip4, markerMTU))
	select {
	case at := <-marker:
		t.Logf("message after the overrun delivered in %v", at.Sub(sent))
	case <-time.After(2 * time.Second):
		t.Fatalf("listener went deaf after the overrun: %+v", ln.Stats())
	}
	s = ln.Stats()
	t.Logf("after the marker: %+v", s)
	// Every message the kernel logged is either received or counted lost.
	// (Fewer than sent is possible: the veth backlog may drop before the rule.)
	if s.Lost == 0 || s.Received+s.Lost > burst+1 || s.Received+s.Lost < burst/2 {
		t.Errorf("Stats = %+v: received + lost should account for the %d messages sent", s, burst+1)
	}
	if !ln.Up() {
		t.Error("Up() = false after an overrun")
	}
}

// TestRestartsAfterSocketFailure breaks the socket under the listener and
// checks that it rebinds the group and keeps delivering.
func TestRestartsAfterSocketFailure(t *testing.T) {
	l := newLab(t)
	l.installFirewall(t)
	handle, ch := collector()
	ln := l.openListener(t, 0, handle)
	ip := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	l.sendAndExpect(t, ch, ip)

	ln.mu.Lock()
	ln.sess.sock.f.Close() // a socket that dies under the reader, not closed by the listener
	ln.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for ln.Stats().Restarts == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := ln.Stats(); s.Restarts != 1 {
		t.Fatalf("Stats = %+v after the socket died, want 1 restart", s)
	}
	if !ln.Up() {
		t.Fatal("Up() = false after a successful restart")
	}
	l.sendAndExpect(t, ch, ip)
}

func TestRunReturnsOnCancelAndClose(t *testing.T) {
	needRoot(t)
	_, fd := newNetNS(t)
	ln, err := Open(Config{Group: testGroup, NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ln.Run(ctx, func(*Packet) {}) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	waitRun(t, done, "cancel")
	if err := ln.Run(context.Background(), func(*Packet) {}); err == nil {
		t.Error("second Run = nil, want an error")
	}

	ln2, err := Open(Config{Group: testGroup + 1, NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- ln2.Run(context.Background(), func(*Packet) {}) }()
	time.Sleep(20 * time.Millisecond)
	if err := ln2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitRun(t, done, "Close")
	if ln2.Up() {
		t.Error("Up() = true after Close")
	}
	if err := ln2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// waitRun waits for Run to return nil after what (cancel, Close).
func waitRun(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after %s = %v, want nil", what, err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Run did not return after %s", what)
	}
}
