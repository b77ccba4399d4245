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
	t.Parallel() // with TestReadmeOnCluster: most of both is waiting
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
// `kubectl exec ds/go-pmtud -- go-pmtud status` runs).
func checkStatus(t *testing.T, p *Pod, v string) {
	t.Helper()
	out, err := p.exec(entrypoint, "status")
	if err != nil {
		t.Fatalf("go-pmtud status in %s: %v", p.ID, err)
	}
	checkStatusText(t, out, lab.NodeName(p.node), v)
}

// checkStatusText: the status of node ("" for any) says ready, running
// version v.
func checkStatusText(t *testing.T, out, node, v string) {
	t.Helper()
	want := []string{"Version:     " + v + " ", "Node:        " + node, "Ready:       yes"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("go-pmtud status: no %q in:\n%s", w, out)
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

// TestReadmeOnCluster runs the README's "Installing on a cluster" on the
// lab turned into a Kubernetes cluster (startCluster: a control plane in
// node1, a real kubelet and containerd in every node), for l2 and tunnel:
// helm install, rollout status, the alerts applied, `kubectl exec
// ds/go-pmtud -- go-pmtud status`; then what an operator checks: peers
// from the Nodes, the download that stalls without go-pmtud completes with
// it, every pod's securityContext, helm upgrade rolling one node at a time,
// helm uninstall leaving nothing behind; and (l2) the plain manifests.
func TestReadmeOnCluster(t *testing.T) {
	needRuntime(t)
	if why := missingKube(); why != "" {
		if testnet.RootRequired() {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	t.Parallel()
	for _, tr := range []string{"l2", "tunnel"} {
		t.Run("transport="+tr, func(t *testing.T) {
			t.Parallel()
			runReadme(t, tr)
		})
	}
	t.Cleanup(func() {
		if ts, err := lab.RootPmtudTables(); err != nil || len(ts) > 0 {
			t.Errorf("go-pmtud tables in the root namespace: %v %v", ts, err)
		}
	})
}

func runReadme(t *testing.T, tr string) {
	l := stallingLab(t)
	c := startCluster(t, l)
	start := time.Now()
	install := readmeLine(t, "helm install ")
	if tr != "l2" {
		install += " --set transport=" + tr
	}
	c.sh(t, install)
	c.sh(t, readmeLine(t, "kubectl -n kube-system rollout status "))
	t.Logf("installed: %d pods Ready %.1f s after helm install", len(l.Nodes), time.Since(start).Seconds())
	c.kubectl(t, "apply", "-f", "test/cluster/testdata/prometheusrule-crd.yaml")
	c.kubectl(t, "wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com")
	c.sh(t, readmeLine(t, "kubectl apply -f deploy/prometheusrule.yaml"))
	out := c.sh(t, readmeLine(t, "kubectl -n kube-system exec ds/go-pmtud -- go-pmtud status"))
	checkStatusText(t, out, "", version)

	pods := c.pods(t)
	checkInstalled(t, l, tr, pods)
	// The peers are the other Nodes, both families of each, from the API.
	out = c.kubectl(t, "-n", "kube-system", "exec", pods[l.ICMPTo].Name, "--", "go-pmtud", "status")
	checkStatusText(t, out, lab.NodeName(l.ICMPTo), version)
	if want := fmt.Sprintf("Peers:       %d (kubernetes %[1]d), 0 unreachable", len(l.Nodes)-1); !strings.Contains(out, want) {
		t.Errorf("status: no %q in:\n%s", want, out)
	}
	for i := range l.Nodes {
		if i != l.ICMPTo && !strings.Contains(out, l.NodeAddr(lab.IPv4, i).String()+","+l.NodeAddr(lab.IPv6, i).String()) {
			t.Errorf("status: %s's addresses not among the peers:\n%s", lab.NodeName(i), out)
		}
	}

	upgrade(t, c, version+upgradeSuffix)
	relays(t, l, 2, lab.IPv4, lab.IPv6)
	checkStatusText(t, c.kubectl(t, "-n", "kube-system", "exec", "ds/go-pmtud", "--", "go-pmtud", "status"), "", version+upgradeSuffix)

	c.sh(t, "helm uninstall go-pmtud -n kube-system")
	c.waitNoPods(t)
	checkResidue(t, l, tr, false)
	if tr == "l2" {
		manifests(t, c)
	}
}

// upgrade runs helm upgrade to image tag and watches the DaemonSet roll:
// never more than one node without a Ready go-pmtud pod, each for at most
// one pod's restart, until every node runs tag.
func upgrade(t *testing.T, c *Cluster, tag string) {
	t.Helper()
	done := make(chan struct{})
	gaps := make(chan rollReport, 1)
	go func() { gaps <- watchRoll(c, done) }()
	out := c.sh(t, "helm upgrade go-pmtud deploy/helm/go-pmtud -n kube-system --reuse-values --set image.tag="+tag)
	if want := "go-pmtud " + tag + " runs on every node"; !strings.Contains(out, want) {
		t.Errorf("helm upgrade's notes: no %q", want)
	}
	c.kubectl(t, "-n", "kube-system", "rollout", "status", "ds/go-pmtud", "--timeout=3m")
	close(done)
	r := <-gaps
	if len(r.problems) > 0 {
		t.Error(strings.Join(r.problems, "; "))
	}
	if len(r.gaps) != len(c.l.Nodes) {
		t.Errorf("saw %d nodes restart (%v), want every one", len(r.gaps), r.gaps)
	}
	t.Logf("rolled to %s: each node without a Ready pod for %v", tag, r.gaps)
	for _, p := range c.pods(t) {
		if want := imageRepo + ":" + tag; p.rel.Image != want {
			t.Errorf("%s runs %s after the upgrade, want %s", lab.NodeName(p.node), p.rel.Image, want)
		}
	}
}

// rollReport is what watchRoll saw: how long each node was without a
// Ready go-pmtud pod, and what went wrong.
type rollReport struct {
	gaps     map[string]time.Duration
	mostDown int // nodes without a Ready pod at once, at the worst
	problems []string
}

// watchRoll polls the pods until done: two nodes without a Ready pod at
// once, or one for longer than a restart, is a problem.
func watchRoll(c *Cluster, done chan struct{}) rollReport {
	r := rollReport{gaps: map[string]time.Duration{}}
	down := map[string]time.Time{}
	var finished time.Time // when done closed: the rollout is complete
	for {
		select {
		case <-done:
			if finished.IsZero() {
				finished = time.Now()
			}
			done = nil
		case <-time.After(100 * time.Millisecond):
		}
		// After the rollout, until the last restart is seen ending.
		if !finished.IsZero() && (len(down) == 0 || time.Since(finished) > 10*time.Second) {
			for n := range down {
				r.problems = append(r.problems, n+" still without a Ready pod after the rollout")
			}
			if r.mostDown > 1 {
				r.problems = append(r.problems, fmt.Sprintf("%d nodes without a Ready pod at once", r.mostDown))
			}
			return r
		}
		byNode, err := c.daemonPods()
		if err != nil {
			continue
		}
		for i := range c.l.Nodes {
			n := lab.NodeName(i)
			ready := readyImage(byNode[n]) != ""
			since, wasDown := down[n]
			switch {
			case !ready && !wasDown:
				down[n] = time.Now()
			case ready && wasDown:
				d := time.Since(since).Round(10 * time.Millisecond)
				r.gaps[n] = d
				if d > kubeletReady {
					r.problems = append(r.problems, fmt.Sprintf("%s without a Ready pod for %v", n, d))
				}
				delete(down, n)
			}
		}
		if len(down) > 1 && len(down) > r.mostDown {
			r.mostDown = len(down)
		}
	}
}

// manifests: the README's other way, the plain manifests with the image
// edited, applied, rolled out, relaying, and deleted without residue.
func manifests(t *testing.T, c *Cluster) {
	t.Helper()
	apply := readmeLine(t, "kubectl apply -f deploy/rbac.yaml -f deploy/daemonset.yaml")
	ds := writeEdited(t, "deploy/daemonset.yaml", "image: ghcr.io/go-pmtud/go-pmtud:"+version, "image: "+imageRepo+":"+version)
	c.sh(t, strings.Replace(apply, "deploy/daemonset.yaml", ds, 1))
	c.kubectl(t, "-n", "kube-system", "rollout", "status", "ds/go-pmtud", "--timeout=3m")
	relays(t, c.l, 3, lab.IPv4)
	c.kubectl(t, "delete", "-f", "deploy/rbac.yaml", "-f", ds, "--wait=true")
	c.waitNoPods(t)
	checkResidue(t, c.l, "l2", false)
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
