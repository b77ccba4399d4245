package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

func needRoot(t *testing.T) {
	t.Helper()
	testnet.NeedRoot(t)
}

// buildLab builds a lab and removes it when the test ends, whatever happens.
func buildLab(t *testing.T, o Options) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := Build(ctx, o)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if left, _ := ListNamespaces(l.Prefix); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	return l
}

// The lab relies on /proc/sys/net resolving to the namespace of the thread
// that opens the file. Prove it, and that the root namespace is unchanged.
func TestSysctlStaysInNamespace(t *testing.T) {
	needRoot(t)
	const key = "net.ipv4.conf.default.rp_filter"
	rootBefore, err := os.ReadFile("/proc/sys/net/ipv4/conf/default/rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	prefix := NewPrefix()
	n, err := newNS(prefix + "-sysctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.close()
		if err := Teardown(prefix); err != nil {
			t.Error(err)
		}
	})
	want := "2"
	if strings.TrimSpace(string(rootBefore)) == "2" {
		want = "1"
	}
	if err := n.Sysctl(key, want); err != nil {
		t.Fatal(err)
	}
	got, err := n.ReadSysctl(key)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("in namespace: %s = %q, want %q", key, got, want)
	}
	rootAfter, err := os.ReadFile("/proc/sys/net/ipv4/conf/default/rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	if string(rootAfter) != string(rootBefore) {
		t.Fatalf("root namespace changed: %s %q -> %q", key, rootBefore, rootAfter)
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP x y
# TYPE gopmtud_frames_sent_total counter
gopmtud_frames_sent_total{transport="l2"} 4
gopmtud_frames_sent_total{transport="routed"} 2
gopmtud_packets_received_total 7
gopmtud_odd{a="x y}"} 1.5 1700000000
`
	m, err := parseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("gopmtud_frames_sent_total"); got != 6 {
		t.Errorf("frames = %v, want 6", got)
	}
	if got := m.Sum("gopmtud_packets_received_total"); got != 7 {
		t.Errorf("received = %v, want 7", got)
	}
	if got := m.Sum("gopmtud_odd"); got != 1.5 {
		t.Errorf("odd = %v, want 1.5", got)
	}
}

// Without go-pmtud the download must stall on both fabrics and families:
// the router's frag-needed / PTB lands on a node that does not own the flow.
func TestStallsWithoutRelay(t *testing.T) {
	needRoot(t)
	for _, fab := range []Fabric{FabricL2, FabricRouted} {
		for _, rcv := range []Receiver{ReceiverNode, ReceiverPod} {
			t.Run(string(fab)+"/"+string(rcv), func(t *testing.T) {
				l := buildLab(t, Options{Fabric: fab, Receiver: rcv})
				for _, f := range []Family{IPv4, IPv6} {
					before, _ := l.RouterPTBs(f)
					d := l.Get(context.Background(), f, 0, 2*time.Second)
					after, _ := l.RouterPTBs(f)
					t.Logf("%v: %v, router sent %d PTBs", f, d, after-before)
					if d.Complete {
						t.Errorf("%v: download completed without relay: %v", f, d)
					}
					if after == before {
						t.Errorf("%v: router sent no frag-needed/PTB", f)
					}
					if mtu, err := l.FlowPMTU(f, 0); err != nil || mtu != 0 {
						t.Errorf("%v: owner PMTU = %d, %v; want none", f, mtu, err)
					}
				}
			})
		}
	}
}

// With the nodes' MTU already right the download completes: the topology
// itself is sound.
func TestControlCompletes(t *testing.T) {
	needRoot(t)
	l := buildLab(t, Options{Fabric: FabricL2, NodeMTU: mtuNarrow})
	for _, f := range []Family{IPv4, IPv6} {
		d := l.Get(context.Background(), f, 0, 5*time.Second)
		t.Logf("%v: %v", f, d)
		if !d.Complete {
			t.Errorf("%v: control download did not complete: %v", f, d)
		}
		if d.ServedBy != NodeName(l.Owner) {
			t.Errorf("%v: served by %q, want owner %s", f, d.ServedBy, NodeName(l.Owner))
		}
	}
}
