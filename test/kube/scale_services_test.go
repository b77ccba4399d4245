//go:build linux

package kube_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

const (
	scaleServices   = 2000
	localEvery      = 3 // every third Service is externalTrafficPolicy Local: 667 of 2,000
	endpointsPerSvc = 3
	churnUpdates    = 1000 // endpoint moves during the churn phase
	maxHWMServices  = 64 << 20
)

// TestScaleServices runs the go-pmtud binary (--kubernetes=true, targeted
// fan-out on, routed transport) in its own network namespace against an API
// server holding 5,000 Nodes and 2,000 LoadBalancer Services with
// EndpointSlices (one in three externalTrafficPolicy Local), measures how
// long it takes to converge, what endpoint churn costs it, its peak RSS
// (VmHWM), and checks on the wire that a PTB about a Local Service's
// LoadBalancer IP goes to exactly the nodes of its endpoints, and one about
// a Cluster Service to every peer. The figures are in docs/kubernetes.md.
func TestScaleServices(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon binds an NFLOG group and raw sockets, in a network namespace of its own")
	}
	cp := startControlPlane(t)
	c := cp.Client()
	bin := buildDaemon(t)

	start := time.Now()
	createNodes(t, c, 0, scaleNodes)
	t.Logf("created %d Nodes in %v", scaleNodes, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	svcs := createServices(t, c)
	t.Logf("created %d Services and their EndpointSlices in %v", scaleServices, time.Since(start).Round(time.Millisecond))

	ns := newNetns(t)
	sink := wireNamespace(t, ns)
	d := startRoutedDaemon(t, cp, ns, bin)

	wantKeys := 0
	for i := range scaleServices {
		if i%localEvery == 0 {
			wantKeys += 2 * 2 // clusterIP and LoadBalancer IP, ports 80 and 443
		}
	}
	peersAt := d.waitPeers(t, scaleNodes-1, 60*time.Second)
	servicesAt := d.waitMetric(t, "gopmtud_fanout_targeted_keys", float64(wantKeys), 60*time.Second)
	hwmInitial := d.hwm(t)
	t.Logf("initial convergence: %d peers %v, %d targeted keys %v after start; VmHWM %.1f MiB",
		scaleNodes-1, peersAt.Round(time.Millisecond), wantKeys, servicesAt.Round(time.Millisecond), mib(hwmInitial))

	churn := churnEndpoints(t, c, svcs)
	t.Logf("endpoint churn: %d EndpointSlice updates in %v (%.0f/s)", churnUpdates, churn.Round(time.Millisecond), churnUpdates/churn.Seconds())

	change := flipPolicy(t, c, d, svcs[3*localEvery], wantKeys-4)

	checkOnTheWire(t, d, ns, sink, svcs)

	hwm, rss := d.hwm(t), d.rss(t)
	t.Logf("daemon memory after all: VmHWM %.1f MiB, VmRSS %.1f MiB", mib(hwm), mib(rss))
	t.Logf("daemon log: %s", d.grepLog("initial services"))
	if hwm > maxHWMServices {
		t.Errorf("VmHWM %.1f MiB, target <= %d MiB", mib(hwm), maxHWMServices>>20)
	}
	if servicesAt > 2*maxInitial {
		t.Errorf("services converged after %v, target < %v", servicesAt, 2*maxInitial)
	}
	if change > maxChange {
		t.Errorf("policy change took %v, target < %v", change, maxChange)
	}
}

// flipPolicy turns Local Service svc to Cluster and returns how long its
// keys took to leave the daemon's table (wantKeys left), API call included.
func flipPolicy(t *testing.T, c kubernetes.Interface, d *daemon, svc *corev1.Service, wantKeys int) time.Duration {
	t.Helper()
	t0 := time.Now()
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if _, err := c.CoreV1().Services(svc.Namespace).Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d.waitMetric(t, "gopmtud_fanout_targeted_keys", float64(wantKeys), 5*time.Second)
	change := time.Since(t0)
	t.Logf("policy change seen after %v (API call included)", change.Round(time.Millisecond))
	return change
}

// startRoutedDaemon starts the binary in ns against cp, as node-0, relaying
// with the routed transport; the capture rule is on lo.
func startRoutedDaemon(t *testing.T, cp *controlPlane, ns netns.NsHandle, bin string) *daemon {
	t.Helper()
	port := forwardInto(t, ns, strings.TrimPrefix(cp.URL, "https://"))
	kubeconfig := strings.Replace(string(mustRead(t, cp.Kubeconfig(adminToken))), cp.URL, fmt.Sprintf("https://127.0.0.1:%d", port), 1)
	kcFile := writeFile(t, t.TempDir(), "kubeconfig", []byte(kubeconfig))
	return startDaemon(t, ns, bin, "--kubernetes=true", "--kubeconfig="+kcFile, "--transport=routed",
		"--nodename=node-0", "--iface=lo", "--log-format=text", "--capture-rate=0",
		fmt.Sprintf("--nflog-group=%d", 40000+os.Getpid()%20000))
}

// checkOnTheWire: a PTB about a Local Service reaches exactly its
// endpoints' nodes, one about a Cluster Service every peer.
func checkOnTheWire(t *testing.T, d *daemon, ns netns.NsHandle, sink int, svcs []*corev1.Service) {
	t.Helper()
	target := svcs[localEvery*7]
	var wantDst []string
	for _, n := range endpointNodes(localEvery * 7) {
		if n != 0 { // node-0 is this daemon's own node
			wantDst = append(wantDst, nodeIP(n))
		}
	}
	slices.Sort(wantDst)
	lbIP := target.Status.LoadBalancer.Ingress[0].IP
	got := relayAndCapture(t, ns, sink, lbIP, 443, 2*time.Second, len(wantDst))
	t.Logf("PTB for Local Service %s/%s (%s:443): relayed to %v; its endpoint nodes %v", target.Namespace, target.Name, lbIP, got, endpointNodes(localEvery*7))
	if !slices.Equal(got, wantDst) {
		t.Errorf("relayed to %v, want exactly the endpoint nodes %v; %s", got, wantDst, d.pathCounters())
	}
	// A Cluster Service: every peer.
	cluster := svcs[1]
	got = relayAndCapture(t, ns, sink, cluster.Status.LoadBalancer.Ingress[0].IP, 443, 5*time.Second, scaleNodes-1)
	t.Logf("PTB for Cluster Service %s/%s: relayed to %d peers", cluster.Namespace, cluster.Name, len(got))
	if len(got) != scaleNodes-1 {
		t.Errorf("Cluster Service: relayed to %d peers, want %d; %s", len(got), scaleNodes-1, d.pathCounters())
	}
}

func nodeIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", 64+i>>16, (i>>8)&255, i&255) }

// endpointNodes are Service i's endpoints' nodes: spread over the cluster.
func endpointNodes(i int) []int {
	out := make([]int, endpointsPerSvc)
	for k := range out {
		out[k] = (i*7919 + k*1009 + 1) % scaleNodes
	}
	return out
}

func svcNamespace(i int) string { return fmt.Sprintf("team-%02d", i%20) }

// createServices creates scaleServices LoadBalancer Services in 20
// namespaces, each with a LoadBalancer IP, two ports and one EndpointSlice
// of endpointsPerSvc endpoints, shaped as the controllers write them.
func createServices(t *testing.T, c kubernetes.Interface) []*corev1.Service {
	t.Helper()
	for i := range 20 {
		ensureNamespace(t, c, svcNamespace(i))
	}
	out := make([]*corev1.Service, scaleServices)
	parallel(t, scaleServices, func(i int) error {
		ctx := context.Background()
		ns, name := svcNamespace(i), fmt.Sprintf("svc-%d", i)
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{"app": name, "team": ns, "app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{"metallb.universe.tf/address-pool": "public",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 600)}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP},
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
				// 4,000 node ports would overflow the default range (2,768);
				// a Local Service still gets its health check node port.
				AllocateLoadBalancerNodePorts: ptr(false)}}
		if i%localEvery == 0 {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		s, err := c.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("172.16.%d.%d", i>>8, i&255)}}
		if s, err = c.CoreV1().Services(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			return err
		}
		out[i] = s
		_, err = c.DiscoveryV1().EndpointSlices(ns).Create(ctx, sliceOf(i, 0), metav1.CreateOptions{})
		return err
	})
	return out
}

// sliceOf is Service i's EndpointSlice after gen moves of its last endpoint.
func sliceOf(i, gen int) *discoveryv1.EndpointSlice {
	var nodes []string
	for k, n := range endpointNodes(i) {
		if k == endpointsPerSvc-1 && gen > 0 {
			n = (n + gen*13) % scaleNodes
		}
		nodes = append(nodes, fmt.Sprintf("node-%d", n))
	}
	s := endpointSlice(svcNamespace(i), fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d-abcde", i), nodes...)
	s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)})
	return s
}

// churnEndpoints moves the last endpoint of Cluster Services (every Local
// Service keeps its nodes, so the wire check below stays exact) churnUpdates
// times, and returns how long the updates took.
func churnEndpoints(t *testing.T, c kubernetes.Interface, svcs []*corev1.Service) time.Duration {
	t.Helper()
	var cluster []int
	for i := range svcs {
		if i%localEvery != 0 {
			cluster = append(cluster, i)
		}
	}
	start := time.Now()
	parallel(t, churnUpdates, func(u int) error {
		i := cluster[u%len(cluster)]
		s := sliceOf(i, u/len(cluster)+1)
		cur, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Get(context.Background(), s.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.ResourceVersion = cur.ResourceVersion
		_, err = c.DiscoveryV1().EndpointSlices(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	return time.Since(start)
}

// parallel runs f(0..n-1) from scaleWorkers goroutines; the first error fails the test.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(scaleWorkers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// wireNamespace gives the daemon's namespace a device "sink" that
// the peers' addresses (10.64.0.0/16) route to: the routed transport's
// packets leave through it and a packet socket on it sees each one. The
// Services' LoadBalancer IPs are local (on lo), so a PTB sent to one
// arrives on lo, where the daemon's capture rule (--iface=lo) logs it.
func wireNamespace(t testing.TB, ns netns.NsHandle) int {
	t.Helper()
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	// A veth pair with both ends here, not a dummy (which not every kernel
	// has), and without ARP, so each packet leaves at once, to our own MAC.
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "sink"}, PeerName: "sink-end"}); err != nil {
		t.Fatalf("add sink: %v", err)
	}
	sink, err := nl.LinkByName("sink")
	if err == nil {
		err = nl.LinkSetARPOff(sink)
	}
	if err == nil {
		err = nl.LinkSetUp(sink)
	}
	if err == nil {
		var end netlink.Link
		if end, err = nl.LinkByName("sink-end"); err == nil {
			err = nl.LinkSetUp(end)
		}
	}
	if err == nil {
		err = nl.AddrAdd(sink, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 127, 0, 1), Mask: net.CIDRMask(32, 32)}})
	}
	if err == nil {
		err = nl.RouteAdd(&netlink.Route{LinkIndex: sink.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(10, 64, 0, 0), Mask: net.CIDRMask(16, 32)}})
	}
	if err == nil {
		lo, _ := nl.LinkByName("lo")
		err = nl.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL,
			Scope: netlink.SCOPE_HOST, Dst: &net.IPNet{IP: net.IPv4(172, 16, 0, 0), Mask: net.CIDRMask(16, 32)}})
	}
	if err != nil {
		t.Fatalf("wiring the namespace: %v", err)
	}
	return sink.Attrs().Index
}

// relayAndCapture sends the daemon a PTB from a router about a packet the
// Service at vip:port sent, and returns the sorted destinations of the
// relayed packets seen on the sink: once want arrived and nothing more for
// 300 ms, or at the deadline.
func relayAndCapture(t *testing.T, ns netns.NsHandle, sink int, vip string, port uint16, budget time.Duration, want int) []string {
	t.Helper()
	var fd int
	if err := netnsutil.Do(ns, func() (err error) {
		// ETH_P_ALL: the kernel shows outgoing packets only to such taps.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: sink})
	}); err != nil {
		t.Fatalf("packet socket on the sink: %v", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("198.51.100.1"), VIP: netip.MustParseAddr(vip),
		Client: netip.MustParseAddr("203.0.113.7"), MTU: 1400, SrcPort: port, DstPort: uint16(40000 + time.Now().UnixNano()%20000)})
	if err := netnsutil.Do(ns, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		return unix.Sendto(s, pkt, 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(vip).As4()})
	}); err != nil {
		t.Fatalf("sending the PTB: %v", err)
	}
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(budget)
	last := time.Now()
	for time.Now().Before(deadline) && !(len(seen) >= want && time.Since(last) > 300*time.Millisecond) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 20 {
			continue
		}
		// A relayed copy: an outgoing IPv4 ICMP packet from us to a peer.
		ll, ok := from.(*unix.SockaddrLinklayer)
		if ok && ll.Pkttype == unix.PACKET_OUTGOING && ll.Protocol == htons(unix.ETH_P_IP) && buf[9] == unix.IPPROTO_ICMP {
			seen[netip.AddrFrom4([4]byte(buf[16:20])).String()] = true
			last = time.Now()
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// pathCounters summarises the daemon's packet path for a failure message.
func (d *daemon) pathCounters() string {
	return fmt.Sprintf("received %v, relayed %v, frames %v, no_peers %v, rate_limited_frames %v, foreign_inner %v",
		d.metric("gopmtud_packets_received_total"), d.metric(`gopmtud_messages_relayed_total{family="ipv4"}`),
		d.metric(`gopmtud_frames_sent_total{transport="routed"}`), d.metric(`gopmtud_packets_dropped_total{reason="no_peers"}`),
		d.metric(`gopmtud_packets_dropped_total{reason="rate_limited_frames"}`), d.metric(`gopmtud_packets_dropped_total{reason="foreign_inner"}`))
}

// metric reads one unlabelled sample from the daemon's metrics; -1 when absent.
func (d *daemon) metric(name string) float64 {
	resp, err := d.client.Get(d.metrics)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if v, err := strconv.ParseFloat(rest, 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// waitMetric polls until the metric has value want and returns the time
// since the process started.
func (d *daemon) waitMetric(t *testing.T, name string, want float64, budget time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		got := d.metric(name)
		if got == want {
			return time.Since(processStart(t, d.cmd.Process.Pid))
		}
		select {
		case <-d.exited:
			t.Fatal("go-pmtud exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v %s = %v, want %v", budget, name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
