package kube_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/go-pmtud/go-pmtud/internal/config"
)

// hostIP stands for what the downward API's status.hostIP gives.
const hostIP = "192.0.2.10"

// measuredPeakMiB is the daemon's peak memory following 5,000 Nodes
// (docs/kubernetes.md); requests and limits must leave headroom above it.
const measuredPeakMiB = 36

// checkResources: memory from the measurement, GOMEMLIMIT from the limit
// (unless set explicitly), no CPU limit.
func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	r := c.Resources
	peak := resource.MustParse("36Mi")
	peak.Add(resource.MustParse("12Mi")) // a third more than the peak at least
	if r.Requests.Memory().Cmp(peak) < 0 || r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
		t.Errorf("memory request %v / limit %v: want >= %v (peak %d MiB + headroom) and limit >= request",
			r.Requests.Memory(), r.Limits.Memory(), &peak, measuredPeakMiB)
	}
	if !r.Limits.Cpu().IsZero() {
		t.Errorf("CPU limit %v: throttling would cap relays in bursts", r.Limits.Cpu())
	}
	n := 0
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		n++
		if e.Value == "" && (e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory") {
			t.Errorf("GOMEMLIMIT %+v: want the memory limit (resourceFieldRef) or an explicit value", e)
		}
	}
	if n != 1 {
		t.Errorf("GOMEMLIMIT set %d times", n)
	}
}

// installMonitorCRDs registers minimal ServiceMonitor and PodMonitor CRDs
// (the Prometheus Operator's group and kinds, spec not validated).
func installMonitorCRDs(t *testing.T, a *applier) {
	t.Helper()
	for _, k := range []struct{ plural, kind string }{{"servicemonitors", "ServiceMonitor"}, {"podmonitors", "PodMonitor"}} {
		crd := decodeYAML(t, []byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: `+k.plural+`.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: `+k.plural+`, singular: `+strings.ToLower(k.kind)+`, kind: `+k.kind+`, listKind: `+k.kind+`List}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`))[0]
		if err := a.create(crd, false); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.refresh()
		_, e1 := a.mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"}, "v1")
		_, e2 := a.mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "PodMonitor"}, "v1")
		if e1 == nil && e2 == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("monitor CRDs not served after 20 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// render runs helm template with --set/-f arguments and returns the raw
// output and the DaemonSet.
func render(t *testing.T, args ...string) (string, *appsv1.DaemonSet) {
	t.Helper()
	out := helm(t, append([]string{"template", "go-pmtud", "deploy/helm/go-pmtud", "-n", "kube-system"}, args...)...)
	for _, o := range decodeYAML(t, out) {
		if o.GetKind() == "DaemonSet" {
			ds := &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
				t.Fatal(err)
			}
			return string(out), ds
		}
	}
	t.Fatal("no DaemonSet")
	return "", nil
}

// daemonConfig parses the DaemonSet's env and args as the daemon would.
func daemonConfig(t *testing.T, ds *appsv1.DaemonSet) (config.Config, error) {
	t.Helper()
	ctr := ds.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = map[string]string{"spec.nodeName": "node-a", "status.hostIP": hostIP}[e.ValueFrom.FieldRef.FieldPath]
		} else {
			env[e.Name] = e.Value
		}
	}
	return config.Parse(ctr.Args, func(k string) string { return env[k] }, io.Discard)
}

func TestChartKubernetesEnabledFalseStaysFalse(t *testing.T) {
	_ = binDir(t)
	vals := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(vals, []byte("kubernetes:\n  enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--set", "kubernetes.enabled=false"}, {"-f", vals}, {"--set-string", "kubernetes.enabled=false"}} {
		_, ds := render(t, args...)
		c, err := daemonConfig(t, ds)
		if err != nil || c.Kubernetes != "false" {
			t.Errorf("%v: kubernetes=%q err=%v, want false", args, c.Kubernetes, err)
		}
	}
	for _, args := range [][]string{{"--set", "kubernetes.enabled=true"}, {"--set", "kubernetes.enabled=auto"}} {
		_, ds := render(t, args...)
		if c, err := daemonConfig(t, ds); err != nil || c.Kubernetes != strings.TrimPrefix(args[1], "kubernetes.enabled=") {
			t.Errorf("%v: kubernetes=%q err=%v", args, c.Kubernetes, err)
		}
	}
}

func TestChartSchemaRefusesBadValues(t *testing.T) {
	_ = binDir(t)
	for _, set := range []string{"kubernetes.enabled=maybe", "transport=pigeon", "metrics.port=70000", "nflogGroup=-1", "typo=1"} {
		cmd := helmCmd(t, "template", "go-pmtud", "deploy/helm/go-pmtud", "--set", set)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "schema") {
			t.Errorf("--set %s: accepted (err %v): %s", set, err, out)
		}
	}
}

func TestChartTunMountFollowsTheTransportWhereverItIsSet(t *testing.T) {
	_ = binDir(t)
	for _, tc := range []struct {
		args []string
		tun  bool
	}{
		{nil, false},
		{[]string{"--set", "transport=tunnel"}, true},
		{[]string{"--set-json", `extraArgs=["--transport=tunnel"]`}, true},
		{[]string{"--set-json", `extraArgs=["--log-level","debug","--transport","tunnel"]`}, true},
		{[]string{"--set-json", `extraArgs=["-transport=tunnel"]`}, true},
		{[]string{"--set-json", `extraEnv=[{"name":"PMTUD_TRANSPORT","value":"tunnel"}]`}, true},
		{[]string{"--set-json", `extraArgs=["--transport=routed"]`}, false},
	} {
		_, ds := render(t, tc.args...)
		ps := ds.Spec.Template.Spec
		// The tunnel also mounts its key Secret: look for the device.
		vol, mount := false, false
		for _, v := range ps.Volumes {
			vol = vol || (v.HostPath != nil && v.HostPath.Path == "/dev/net/tun")
		}
		for _, m := range ps.Containers[0].VolumeMounts {
			mount = mount || m.MountPath == "/dev/net/tun"
		}
		mounted := vol && mount
		if mounted != tc.tun {
			t.Errorf("%v: /dev/net/tun mounted=%v, want %v", tc.args, mounted, tc.tun)
		}
		c, err := daemonConfig(t, ds)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if (c.Transport == config.TransportTunnel) != tc.tun {
			t.Errorf("%v: daemon transport %s, mount %v", tc.args, c.Transport, mounted)
		}
	}
}

func TestChartPrometheusPortAnnotationOnce(t *testing.T) {
	_ = binDir(t)
	count := regexp.MustCompile(`(?m)^\s+prometheus\.io/port:`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, `"4440"`},
		{[]string{"--set-string", "podAnnotations.prometheus\\.io/port=9999"}, `"9999"`},
	} {
		out, ds := render(t, tc.args...)
		if n := len(count.FindAllString(out, -1)); n != 1 {
			t.Errorf("%v: prometheus.io/port appears %d times", tc.args, n)
		}
		if got := ds.Spec.Template.Annotations["prometheus.io/port"]; `"`+got+`"` != tc.want {
			t.Errorf("%v: prometheus.io/port %q, want %s", tc.args, got, tc.want)
		}
		if ds.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
			t.Errorf("%v: scrape annotation lost", tc.args)
		}
	}
}

func TestChartPortsOutsideNodePortRangeOnTheNodeAddress(t *testing.T) {
	_ = binDir(t)
	_, ds := render(t)
	for _, p := range ds.Spec.Template.Spec.Containers[0].Ports {
		if p.ContainerPort >= 30000 && p.ContainerPort <= 32767 {
			t.Errorf("port %s %d is in the NodePort range", p.Name, p.ContainerPort)
		}
	}
	_, ds = render(t, "--set", "transport=tunnel")
	c, err := daemonConfig(t, ds)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]int{"metrics": c.MetricsPort, "health": c.HealthPort, "tunnel": c.TunnelPort} {
		if p >= 30000 && p <= 32767 {
			t.Errorf("%s port %d is in the NodePort range", name, p)
		}
	}
	if c.MetricsAddress != hostIP || c.HealthAddress != hostIP {
		t.Errorf("listeners on %q / %q, want the node's own address", c.MetricsAddress, c.HealthAddress)
	}
	if c.MetricsPort != config.ChartMetricsPort {
		t.Errorf("chart metrics port %d, config.ChartMetricsPort %d", c.MetricsPort, config.ChartMetricsPort)
	}
	checkResources(t, ds.Spec.Template.Spec.Containers[0])
}

func TestChartMonitoringObjects(t *testing.T) {
	_ = binDir(t)
	out := helm(t, "template", "go-pmtud", "deploy/helm/go-pmtud", "-n", "kube-system",
		"--set", "serviceMonitor.enabled=true,podMonitor.enabled=true,dashboard.enabled=true,prometheusRule.enabled=true")
	var kinds []string
	for _, o := range decodeYAML(t, out) {
		kinds = append(kinds, o.GetKind())
		switch o.GetKind() {
		case "ConfigMap":
			if o.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard labels %v", o.GetLabels())
			}
			data, _ := o.Object["data"].(map[string]any)
			var dash struct {
				Panels []struct {
					Title   string
					Targets []struct{ Expr string }
				}
			}
			if err := json.Unmarshal([]byte(data["go-pmtud.json"].(string)), &dash); err != nil {
				t.Fatalf("dashboard JSON: %v", err)
			}
			var exprs string
			for _, p := range dash.Panels {
				for _, tg := range p.Targets {
					exprs += tg.Expr + "\n"
				}
			}
			for _, m := range []string{"gopmtud_messages_relayed_total", "gopmtud_packets_dropped_total", "gopmtud_relay_latency_seconds_bucket",
				"gopmtud_capture_lost_total", "gopmtud_peers", "gopmtud_frames_sent_total", "gopmtud_send_errors_total",
				"gopmtud_tunnel_received_total", "gopmtud_tunnel_filtered_total", "gopmtud_tunnel_socket_drops_total"} {
				if !strings.Contains(exprs, m) {
					t.Errorf("dashboard has no panel on %s", m)
				}
			}
		case "Service":
			ports, _, _ := unstructuredPorts(o.Object)
			if !slices.Contains(ports, "metrics") {
				t.Errorf("service ports %v", ports)
			}
		}
	}
	slices.Sort(kinds)
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "PodMonitor", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}

func unstructuredPorts(obj map[string]any) ([]string, bool, error) {
	spec, _ := obj["spec"].(map[string]any)
	list, _ := spec["ports"].([]any)
	var names []string
	for _, p := range list {
		if m, ok := p.(map[string]any); ok {
			names = append(names, m["name"].(string))
		}
	}
	return names, len(names) > 0, nil
}

// helmCmd is helm() for a run whose failure is the point.
func helmCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir(t), "helm"), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data")
	return cmd
}
