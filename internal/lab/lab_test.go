package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// Without go-pmtud the download must stall on both fabrics and families:
// the router's frag-needed / PTB lands on a node that does not own the flow.
func TestStallsWithoutRelay(t *testing.T) {
	needRoot(t)
	for _, fab := range []Fabric{FabricL2, FabricRouted, FabricDual} {
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
	for _, fab := range []Fabric{FabricL2, FabricDual} {
		t.Run(string(fab), func(t *testing.T) {
			l := buildLab(t, Options{Fabric: fab, NodeMTU: mtuNarrow})
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
		})
	}
}

// On the dual-homed fabric every node has two uplinks and a multipath
// default route over both, and the router's packet-too-big lands on the
// second uplink (eth1) of node2, never on eth0, never on the owner.
func TestDualHomedICMPOnSecondUplink(t *testing.T) {
	needRoot(t)
	l := buildLab(t, Options{Fabric: FabricDual})
	for i, n := range l.Nodes {
		rs, err := n.Netlink().RouteList(nil, unix.AF_INET6)
		if err != nil {
			t.Fatal(err)
		}
		multipath := false
		for _, r := range rs {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				multipath = len(r.MultiPath) == 2
			}
		}
		if !multipath {
			t.Errorf("%s: no IPv6 default route over two nexthops: %v", NodeName(i), rs)
		}
	}
	in := func(node int, ifname string) int64 {
		v, err := l.Nodes[node].IfacePTBsIn6(ifname)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a0, b0, o0 := in(l.ICMPTo, ifUplink), in(l.ICMPTo, ifUplink2), in(l.Owner, ifUplink)+in(l.Owner, ifUplink2)
	d := l.Get(context.Background(), IPv6, 0, 2*time.Second)
	if d.Complete {
		t.Fatalf("download completed without relay: %v", d)
	}
	a1, b1, o1 := in(l.ICMPTo, ifUplink), in(l.ICMPTo, ifUplink2), in(l.Owner, ifUplink)+in(l.Owner, ifUplink2)
	t.Logf("%s: %d packet-too-big on %s, %d on %s; owner %d", NodeName(l.ICMPTo), b1-b0, ifUplink2, a1-a0, ifUplink, o1-o0)
	if b1-b0 == 0 || a1 != a0 || o1 != o0 {
		t.Errorf("packet-too-big landed: %s %s %d, %s %d, owner %d; want all on %s %s",
			NodeName(l.ICMPTo), ifUplink2, b1-b0, ifUplink, a1-a0, o1-o0, NodeName(l.ICMPTo), ifUplink2)
	}
}
