package cluster

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/lab"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

const (
	stallTimeout    = 3 * time.Second
	downloadTimeout = 10 * time.Second
	readyTimeout    = 30 * time.Second
	// kubeletReady: a kubelet's pod is Ready after its readiness probe's
	// first success, up to one 10 s period after the start (15-25 s
	// measured from a new manifest on a busy 2-core machine).
	kubeletReady = 60 * time.Second
)

// TestChartInTheRuntime installs the chart's DaemonSet on the lab's three
// nodes (one container per node namespace, as a kubelet would run it),
// for l2 and tunnel: every pod ready, the download that stalls without
// go-pmtud completes with it, `go-pmtud status` works through the
// runtime's exec, an upgrade rolls one pod at a time and keeps relaying,
// and the uninstall leaves nothing in the nodes.
func TestChartInTheRuntime(t *testing.T) {
	needRuntime(t)
	t.Parallel() // with TestChartOnKubelets: most of both is waiting
	rt := StartRuntime(t, RuntimeOptions{})
	for tag, img := range images {
		if _, err := rt.Ctr("images", "import", img); err != nil {
			t.Fatalf("importing the %s image: %v", tag, err)
		}
	}
	for _, tr := range []string{"l2", "tunnel"} {
		t.Run("transport="+tr, func(t *testing.T) {
			t.Parallel()
			runRelease(t, rt, tr)
		})
	}
	t.Cleanup(func() {
		if ts, err := lab.RootPmtudTables(); err != nil || len(ts) > 0 {
			t.Errorf("go-pmtud tables in the root namespace: %v %v", ts, err)
		}
	})
}

func runRelease(t *testing.T, rt *Runtime, tr string) {
	l := stallingLab(t)
	rel := renderChart(t, l, tr, version)
	dirs := secretDirs(t, rel)
	pods := install(t, rt, l, rel, dirs)
	checkInstalled(t, l, tr, pods)

	// helm upgrade: the new image, the same Secret (the chart's lookup keeps
	// the tunnel key), rolled one pod at a time.
	next := renderChart(t, l, tr, version+upgradeSuffix)
	next.Secrets = rel.Secrets
	roll(t, rt, l, pods, next, dirs)
	checkStatus(t, pods[l.ICMPTo], version+upgradeSuffix)

	// helm uninstall.
	for _, p := range pods {
		if code := p.stop(t); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM", p.ID, code)
		}
	}
	checkResidue(t, l, tr, false)
}

// stallingLab builds the ECMP lab (removed by the test's cleanup) and
// checks that its download stalls without go-pmtud.
func stallingLab(t *testing.T) *lab.Lab {
	t.Helper()
	l, err := lab.Build(ctx, lab.Options{Fabric: lab.FabricL2, Receiver: lab.ReceiverNode})
	if err != nil {
		t.Fatal(err)
	}
	prefixMu.Lock()
	prefixes = append(prefixes, l.Prefix)
	prefixMu.Unlock()
	t.Cleanup(func() { _ = l.Close() })
	if d := l.Get(ctx, lab.IPv4, 0, stallTimeout); d.Complete {
		t.Fatalf("download completed without go-pmtud (%v): the lab does not reproduce the black hole", d)
	} else {
		t.Logf("without go-pmtud: stalled at %d of %d bytes", d.Bytes, d.Want)
	}
	return l
}

// install starts the pod on every node and waits for every one to be ready.
func install(t *testing.T, rt *Runtime, l *lab.Lab, rel Release, dirs map[string]string) []*Pod {
	t.Helper()
	start := time.Now()
	var pods []*Pod
	for i := range l.Nodes {
		pods = append(pods, startPod(t, rt, l, i, rel, dirs))
	}
	for _, p := range pods {
		p.waitReady(t, readyTimeout)
	}
	t.Logf("installed %s: %d pods ready in %.1f s", rel.Image, len(pods), time.Since(start).Seconds())
	return pods
}

// relays: downloads from client address src (a flow that has learned no
// PMTU yet) complete, and the flow learned the narrow hop's MTU.
func relays(t *testing.T, l *lab.Lab, src int, fams ...lab.Family) {
	t.Helper()
	for _, f := range fams {
		if mtu, err := l.FlowPMTU(f, src); err != nil || mtu != 0 {
			t.Fatalf("%v from client %d: PMTU %d before the download (%v): the check would prove nothing", f, src, mtu, err)
		}
		d := l.Get(ctx, f, src, downloadTimeout)
		if !d.Complete {
			t.Fatalf("%v download from client %d with go-pmtud did not complete: %v", f, src, d)
		}
		mtu, err := l.FlowPMTU(f, src)
		if err != nil || mtu != l.NarrowMTU {
			t.Errorf("%v: PMTU %d after the download (%v), want %d", f, mtu, err, l.NarrowMTU)
		}
		t.Logf("with go-pmtud: %v download from client %d complete in %.3f s", f, src, d.Elapsed.Seconds())
	}
}

// roll replaces the pods one at a time with next's, as a RollingUpdate
// DaemonSet does: the next pod is replaced only once the new one is ready,
// so at most one node is without go-pmtud at a time, and only for one
// restart. After each step a new flow's download must complete.
func roll(t *testing.T, rt *Runtime, l *lab.Lab, pods []*Pod, next Release, dirs map[string]string) {
	t.Helper()
	for i := range pods {
		start := time.Now()
		if code := pods[i].stop(t); code != 0 {
			t.Errorf("%s exited with %d after SIGTERM", pods[i].ID, code)
		}
		for j, p := range pods {
			if _, err := p.probe(); j != i && err != nil {
				t.Errorf("%s not ready while %s restarts: %v", p.ID, lab.NodeName(i), err)
			}
		}
		pods[i] = startPod(t, rt, l, i, next, dirs)
		pods[i].waitReady(t, readyTimeout)
		t.Logf("%s rolled to %s: without go-pmtud for %.2f s", lab.NodeName(i), next.Image, time.Since(start).Seconds())
		relays(t, l, 2+i, lab.IPv4)
	}
}

// checkInstalled runs the checks of a fresh install: every pod's
// securityContext, relaying (a new flow per family), `go-pmtud status` on
// the node the router's ICMP reaches, and the host state go-pmtud owns.
func checkInstalled(t *testing.T, l *lab.Lab, tr string, pods []*Pod) {
	for _, p := range pods {
		checkSecurity(t, p)
	}
	relays(t, l, 1, lab.IPv4, lab.IPv6)
	checkStatus(t, pods[l.ICMPTo], version)
	checkResidue(t, l, tr, true)
}

// checkStatus: `go-pmtud status` through the runtime's exec (what
// `kubectl exec ds/go-pmtud -- go-pmtud status` runs) reports the node
// ready, running version v.
func checkStatus(t *testing.T, p *Pod, v string) {
	t.Helper()
	out, err := p.exec(entrypoint, "status")
	if err != nil {
		t.Fatalf("go-pmtud status in %s: %v", p.ID, err)
	}
	for _, want := range []string{"Version:     " + v + " ", "Node:        " + lab.NodeName(p.node), "Ready:       yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("go-pmtud status in %s: no %q in:\n%s", p.ID, want, out)
		}
	}
}

// capBits are the capability numbers the chart may add (linux/capability.h).
var capBits = map[string]uint{"NET_ADMIN": 12, "NET_RAW": 13}

// checkSecurity: the running process has exactly the securityContext's
// capabilities, no_new_privs, seccomp filtering and a read-only root.
func checkSecurity(t *testing.T, p *Pod) {
	t.Helper()
	st, err := p.procStatus()
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range p.rel.Pod.Containers[0].SecurityContext.Capabilities.Add {
		b, ok := capBits[string(c)]
		if !ok {
			t.Fatalf("capability %s: add its number to capBits", c)
		}
		want |= 1 << b
	}
	for k, w := range map[string]uint64{"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": 0, "CapAmb": 0} {
		if got, err := strconv.ParseUint(st[k], 16, 64); err != nil || got != w {
			t.Errorf("%s: %s %s, want %016x", p.ID, k, st[k], w)
		}
	}
	if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("%s: NoNewPrivs %s, Seccomp %s; want 1 and 2 (filter)", p.ID, st["NoNewPrivs"], st["Seccomp"])
	}
	if ro, err := p.rootReadOnly(); err != nil || !ro {
		t.Errorf("%s: root filesystem read-only %v (%v)", p.ID, ro, err)
	}
}

// checkResidue: while installed, the pods' own state is there (so that its
// absence after the uninstall means something): go-pmtud's nft table, its
// marked neighbour entries (l2) or its TUN device (tunnel). After the
// uninstall none of it is left on any node.
func checkResidue(t *testing.T, l *lab.Lab, tr string, installed bool) {
	t.Helper()
	for i, n := range l.Nodes {
		ts, err := l.DaemonTables(i)
		if err != nil {
			t.Fatal(err)
		}
		var owned []string
		if len(ts) > 0 {
			owned = append(owned, fmt.Sprintf("nft tables %v", ts))
		}
		if nb := markedNeighbours(t, n.Name); len(nb) > 0 {
			owned = append(owned, fmt.Sprintf("neighbour entries %v", nb))
		}
		if _, err := n.Netlink().LinkByName("pmtud0"); err == nil {
			owned = append(owned, "pmtud0")
		}
		switch {
		case !installed && len(owned) > 0:
			t.Errorf("%s after the uninstall: %s left", n.Name, strings.Join(owned, ", "))
		case installed && (len(ts) == 0 || !strings.Contains(strings.Join(owned, " "), map[string]string{"l2": "neighbour", "tunnel": "pmtud0"}[tr])):
			t.Errorf("%s while installed: only %v: the residue check would prove nothing", n.Name, owned)
		}
	}
}

// TestChartOnKubelets is TestChartInTheRuntime with a real kubelet per
// node (built from k8s.io/kubernetes by hack/kube-bins), each with its own
// containerd (CRI), both in the node's namespace: the DaemonSet's pod is
// the node's static pod, the kubelet runs it, probes it and reports it
// Ready; the upgrade and the uninstall are the manifest replaced and removed.
func TestChartOnKubelets(t *testing.T) {
	needRuntime(t)
	if kubeletBin == "" {
		why := "no kubelet in the kube-bins cache: run hack/kube-bins/build.sh"
		if testnet.RootRequired() {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	t.Parallel()
	for _, tr := range []string{"l2", "tunnel"} {
		t.Run("transport="+tr, func(t *testing.T) {
			t.Parallel()
			runKubelets(t, tr)
		})
	}
	t.Cleanup(func() {
		if ts, err := lab.RootPmtudTables(); err != nil || len(ts) > 0 {
			t.Errorf("go-pmtud tables in the root namespace: %v %v", ts, err)
		}
	})
}

func runKubelets(t *testing.T, tr string) {
	l := stallingLab(t)
	var ks []*Kubelet
	for i := range l.Nodes {
		ks = append(ks, startKubelet(t, l, i))
	}
	rel := renderChart(t, l, tr, version)
	dirs := secretDirs(t, rel)
	start := time.Now()
	for _, k := range ks {
		if err := k.apply(&rel, dirs); err != nil {
			t.Fatal(err)
		}
	}
	var pods []*Pod
	for _, k := range ks {
		pods = append(pods, k.waitReady(t, rel, kubeletReady))
	}
	t.Logf("installed %s: the kubelets report %d pods Ready in %.1f s", rel.Image, len(pods), time.Since(start).Seconds())
	checkInstalled(t, l, tr, pods)

	next := renderChart(t, l, tr, version+upgradeSuffix)
	next.Secrets = rel.Secrets
	for i, k := range ks {
		start := time.Now()
		if err := k.apply(&next, dirs); err != nil {
			t.Fatal(err)
		}
		for j, o := range ks {
			if id, seen := o.readyPod(rel.Image); j > i && id == "" {
				t.Errorf("%s not Ready while %s rolls: %s", lab.NodeName(j), lab.NodeName(i), seen)
			}
		}
		pods[i] = k.waitReady(t, next, kubeletReady)
		t.Logf("%s rolled to %s: %.2f s from the new manifest to Ready", lab.NodeName(i), next.Image, time.Since(start).Seconds())
		relays(t, l, 2+i, lab.IPv4)
	}
	checkStatus(t, pods[l.ICMPTo], version+upgradeSuffix)

	for _, k := range ks {
		if err := k.apply(nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range ks {
		k.waitGone(t, 30*time.Second)
	}
	checkResidue(t, l, tr, false)
}

// markedNeighbours lists the neighbour entries in namespace ns that carry
// go-pmtud's protocol mark.
func markedNeighbours(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "neigh", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh show: %v: %s", err, out)
	}
	var marked []string
	mark := strconv.Itoa(transport.NeighProtocol)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(" "+line+" ", " proto "+mark+" ") {
			marked = append(marked, f[0])
		}
	}
	return marked
}
