package kube_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/peers/kube"
)

// decodeYAML splits a multi-document YAML stream into objects.
func decodeYAML(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode YAML: %v", err)
		}
		if len(m) == 0 {
			continue // an empty document, e.g. a disabled template
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{repoRoot(t)}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// helm runs the helm binary built by hack/kube-bins with its state in a
// temporary folder.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir(t), "helm"), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// applier creates objects through the dynamic client, server-side.
type applier struct {
	t      *testing.T
	cfg    *rest.Config
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newApplier(t *testing.T, cp *controlPlane) *applier {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config())
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, cfg: cp.Config(), dyn: dyn}
	a.refresh()
	return a
}

func (a *applier) refresh() {
	a.t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(a.cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		a.t.Fatal(err)
	}
	a.mapper = restmapper.NewDiscoveryRESTMapper(groups)
}

// create creates obj; dryRun asks the server to run admission and
// validation but store nothing (dryRun=All).
func (a *applier) create(obj *unstructured.Unstructured, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	_, err = ri.Create(context.Background(), obj, opts)
	return err
}

// installPrometheusRuleCRD registers a minimal PrometheusRule CRD (the
// Prometheus Operator's group and kind, fields not validated), so the
// example rule can be dry-run against the server like everything else.
func installPrometheusRuleCRD(t *testing.T, a *applier) {
	t.Helper()
	crd := decodeYAML(t, []byte(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: prometheusrules, singular: prometheusrule, kind: PrometheusRule, listKind: PrometheusRuleList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [groups]
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name, rules]
                    properties:
                      name: {type: string}
                      rules:
                        type: array
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {type: string}
                            for: {type: string}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
`))[0]
	if err := a.create(crd, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.refresh()
		if _, err := a.mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "PrometheusRule"}, "v1"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("PrometheusRule CRD not served after 20 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestManifestsAcceptedByAPIServer: every object in deploy/*.yaml and in the
// Helm chart (default values, and every option set) passes the real API
// server's validation and admission in a server-side dry run, with strict
// field validation (an unknown or misspelt field fails).
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	cp := startControlPlane(t)
	a := newApplier(t, cp)
	installPrometheusRuleCRD(t, a)
	installMonitorCRDs(t, a)

	sets := map[string][]byte{}
	for _, f := range []string{"rbac.yaml", "daemonset.yaml", "prometheusrule.yaml"} {
		sets["deploy/"+f] = readFile(t, "deploy", f)
	}
	sets["helm default values"] = helm(t, "template", "go-pmtud", "deploy/helm/go-pmtud", "--namespace", "kube-system")
	sets["helm every option"] = helm(t, "template", "rel", "deploy/helm/go-pmtud", "--namespace", "kube-system",
		"-f", "test/kube/testdata/values-all.yaml")
	helm(t, "lint", "--strict", "deploy/helm/go-pmtud")

	for name, b := range sets {
		objs := decodeYAML(t, b)
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.GetKind())
			if err := a.create(o, true); err != nil {
				t.Errorf("%s: %s %s rejected: %v", name, o.GetKind(), o.GetName(), err)
			}
		}
		slices.Sort(kinds)
		t.Logf("%s: accepted %v", name, kinds)
		want := []string{"ClusterRole", "ClusterRoleBinding", "DaemonSet", "ServiceAccount"}
		if strings.Contains(name, "prometheusrule") {
			want = []string{"PrometheusRule"}
		} else if strings.Contains(name, "daemonset") {
			want = []string{"DaemonSet"}
		} else if strings.Contains(name, "rbac") {
			want = []string{"ClusterRole", "ClusterRoleBinding", "ServiceAccount"}
		} else if strings.Contains(name, "every option") {
			// transport tunnel: the chart creates the key Secret; monitoring on.
			want = []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "PodMonitor", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor"}
		}
		if !slices.Equal(kinds, want) {
			t.Errorf("%s: kinds %v, want %v", name, kinds, want)
		}
	}
}

// TestManifestsConfigureTheDaemon: the environment and arguments each
// DaemonSet gives the container parse as go-pmtud flags, and the Helm
// chart's values arrive as the options they name; the chart's RBAC and
// alerts are the same as the plain manifests'.
func TestManifestsConfigureTheDaemon(t *testing.T) {
	_ = binDir(t) // helm
	for _, tc := range []struct {
		name  string
		yaml  []byte
		check func(t *testing.T, c config.Config)
	}{
		{"deploy/daemonset.yaml", readFile(t, "deploy", "daemonset.yaml"), func(t *testing.T, c config.Config) {
			if c.Kubernetes != "true" || c.NodeName != "node-a" || c.Transport != "l2" || c.MetricsPort != 4440 || c.HealthPort != 4441 ||
				c.MetricsAddress != hostIP || c.HealthAddress != hostIP {
				t.Errorf("config %+v", c)
			}
		}},
		{"helm default values", helm(t, "template", "go-pmtud", "deploy/helm/go-pmtud", "-n", "kube-system"), func(t *testing.T, c config.Config) {
			if c.Kubernetes != "true" || c.NodeName != "node-a" || c.NodeAddressType != "InternalIP" || c.Firewall != "nftables" || c.NFLOGGroup != 33 ||
				c.MetricsPort != 4440 || c.HealthPort != 4441 || c.MetricsAddress != hostIP || c.HealthAddress != hostIP {
				t.Errorf("config %+v", c)
			}
		}},
		{"helm every option", helm(t, "template", "rel", "deploy/helm/go-pmtud", "-n", "kube-system", "-f", "test/kube/testdata/values-all.yaml"), func(t *testing.T, c config.Config) {
			p := c.Policy
			checks := map[string]bool{
				"kubernetes":        c.Kubernetes == "true" && c.Kubeconfig == "/etc/kube/config",
				"node-address-type": c.NodeAddressType == "ExternalIP",
				"node-selector":     c.NodeSelector == "node-role.kubernetes.io/worker,zone in (a,b)",
				"peers":             len(c.Peers) == 2 && c.Peers[0].Addr() == netip.MustParseAddr("10.1.0.1") && c.Peers[1].Addr() == netip.MustParseAddr("fd00:1::1"),
				"transport":         c.Transport == "tunnel",
				"tunnel":            c.TunnelPort == 31042 && c.TunnelDevice == "pmtud9" && c.TunnelKeyFile == "/etc/go-pmtud/tunnel/tunnel.keys" && !c.TunnelInsecure,
				"capture":           c.CaptureBurst == 50 && c.CaptureSourceRate == 300 && c.CaptureBuffer == 8<<20,
				"iface":             slices.Equal(c.Ifaces, []string{"eth1"}),
				"ttl":               c.TTL == 1,
				"nflog-group":       c.NFLOGGroup == 34,
				"firewall":          c.Firewall == "none",
				"capture-rate":      c.CaptureRate == 0,
				"ignore-networks":   len(c.IgnoreNetworks) == 2 && c.IgnoreNetworks[1].String() == "fd00:9::/48",
				"relay-for":         len(c.RelayFor) == 1 && c.RelayFor[0].String() == "10.96.0.0/12",
				"ports":             slices.Equal(c.Ports, []uint16{443, 8443}),
				"strict":            c.Strict,
				"dry-run":           c.DryRun,
				"dedup-window":      p.DedupWindow == 250*time.Millisecond,
				"flow":              p.FlowRate == 20 && p.FlowBurst == 30,
				"source":            p.SourceRate == 600 && p.SourceBurst == 700,
				"global":            p.GlobalRate == 2500.5 && p.GlobalBurst == 3000,
				"metrics":           c.MetricsPort == 31040 && c.MetricsAddress == "127.0.0.1",
				"health":            c.HealthPort == 31041 && c.HealthAddress == "0.0.0.0",
				"log":               c.LogFormat == "text" && c.LogLevel == "warn", // extraArgs win over env
			}
			for opt, ok := range checks {
				if !ok {
					t.Errorf("option %s did not arrive: %+v", opt, c)
				}
			}
		}},
	} {
		t.Run(strings.ReplaceAll(tc.name, "/", "_"), func(t *testing.T) {
			var ds *appsv1.DaemonSet
			for _, o := range decodeYAML(t, tc.yaml) {
				if o.GetKind() == "DaemonSet" {
					ds = &appsv1.DaemonSet{}
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
						t.Fatal(err)
					}
				}
			}
			if ds == nil {
				t.Fatal("no DaemonSet")
			}
			checkPodSpec(t, ds.Spec.Template.Spec)
			if tc.name == "helm every option" {
				ps := ds.Spec.Template.Spec
				// The TUN device and the key Secret, each mounted.
				if len(ps.Volumes) != 2 || ps.Volumes[0].HostPath == nil || ps.Volumes[0].HostPath.Path != "/dev/net/tun" ||
					ps.Volumes[1].Secret == nil || len(ps.Containers[0].VolumeMounts) != 2 {
					t.Errorf("tunnel transport without /dev/net/tun and its key Secret: volumes %+v", ps.Volumes)
				}
			}
			ctr := ds.Spec.Template.Spec.Containers[0]
			env := map[string]string{}
			for _, e := range ctr.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
					env[e.Name] = "node-a" // what the downward API gives
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP":
					env[e.Name] = hostIP
				case strings.HasPrefix(e.Name, "PMTUD_"):
					env[e.Name] = e.Value
				}
			}
			if env["PMTUD_NODENAME"] != "node-a" {
				t.Errorf("PMTUD_NODENAME is not the downward API's spec.nodeName: %+v", ctr.Env)
			}
			c, err := config.Parse(ctr.Args, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("the daemon rejects this configuration: %v (env %v, args %v)", err, env, ctr.Args)
			}
			tc.check(t, c)
		})
	}

	// The chart's ClusterRole and alerts are the plain manifests'.
	var plainRules, chartRules []rbacv1.PolicyRule
	for _, o := range decodeYAML(t, readFile(t, "deploy", "rbac.yaml")) {
		if o.GetKind() == "ClusterRole" {
			plainRules = rulesOf(t, o)
		}
	}
	for _, o := range decodeYAML(t, helm(t, "template", "go-pmtud", "deploy/helm/go-pmtud", "-n", "kube-system")) {
		if o.GetKind() == "ClusterRole" {
			chartRules = rulesOf(t, o)
		}
	}
	if len(plainRules) == 0 || !equalJSON(t, plainRules, chartRules) {
		t.Errorf("chart ClusterRole rules %+v differ from deploy/rbac.yaml %+v", chartRules, plainRules)
	}
	var plainSpec, chartSpec any
	for _, o := range decodeYAML(t, readFile(t, "deploy", "prometheusrule.yaml")) {
		plainSpec = o.Object["spec"]
	}
	if err := sigsyaml.Unmarshal(readFile(t, "deploy", "helm", "go-pmtud", "files", "prometheusrule-spec.yaml"), &chartSpec); err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, plainSpec, chartSpec) {
		t.Error("deploy/helm/go-pmtud/files/prometheusrule-spec.yaml differs from the spec of deploy/prometheusrule.yaml")
	}
}

// checkPodSpec checks what the issue asks of the pod: host network, the two
// capabilities instead of privileged, every taint tolerated, probes on the
// health port.
func checkPodSpec(t *testing.T, ps corev1.PodSpec) {
	t.Helper()
	if !ps.HostNetwork || ps.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork=%v dnsPolicy=%s", ps.HostNetwork, ps.DNSPolicy)
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("security context %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.String() != "health" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.String() != "health" {
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		t.Error("a preStop hook: the binary cleans up itself, and the image has no shell")
	}
	checkResources(t, c)
}

func rulesOf(t *testing.T, o *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var cr rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cr); err != nil {
		t.Fatal(err)
	}
	return cr.Rules
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := sigsyaml.Marshal(a)
	jb, err2 := sigsyaml.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

// TestRBACSufficientAndMinimal: with deploy/rbac.yaml applied, the
// ServiceAccount's own token can get, list and watch Nodes (and run the Node
// watch), list and watch Services and EndpointSlices (and run that watch),
// is denied everything else tried, and the server's own account of its
// permissions lists nothing beyond those and the self-review rules every
// authenticated user has.
func TestRBACSufficientAndMinimal(t *testing.T) {
	cp := startControlPlane(t)
	a := newApplier(t, cp)
	for _, o := range decodeYAML(t, readFile(t, "deploy", "rbac.yaml")) {
		if err := a.create(o, false); err != nil {
			t.Fatalf("apply %s: %v", o.GetKind(), err)
		}
	}
	admin := cp.Client()
	createNode(t, admin, "self", nil, "10.0.0.1")
	createNode(t, admin, "n1", nil, "10.0.0.11")
	ctx := context.Background()

	tr, err := admin.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "go-pmtud",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cp.TokenConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}

	// Sufficient: what the daemon does.
	if _, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list nodes: %v", err)
	}
	if _, err := sa.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil {
		t.Errorf("get node: %v", err)
	}
	if w, err := sa.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("watch nodes: %v", err)
	} else {
		w.Stop()
	}
	reg, w, _ := watchPeers(t, nodeClient(t, cp.TokenConfig(tr.Status.Token)), kube.Config{NodeName: "self"})
	waitPeers(t, reg, 10*time.Second, "10.0.0.11 n1")
	if n := w.WatchErrors(); n != 0 {
		t.Errorf("%d watch errors with the ServiceAccount's token", n)
	}
	if _, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list services: %v", err)
	}
	if _, err := sa.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list endpointslices: %v", err)
	}
	if n := runServiceWatch(t, cp.TokenConfig(tr.Status.Token)); n != 0 {
		t.Errorf("%d service watch errors with the ServiceAccount's token", n)
	}

	// Denied: anything else.
	denied := map[string]func() error{
		"list pods":    func() error { _, err := sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); return err },
		"list secrets": func() error { _, err := sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); return err },
		"get secret": func() error {
			_, err := sa.CoreV1().Secrets("kube-system").Get(ctx, "x", metav1.GetOptions{})
			return err
		},
		"list configmaps": func() error {
			_, err := sa.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{})
			return err
		},
		"list namespaces": func() error { _, err := sa.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err },
		"get service": func() error {
			_, err := sa.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		},
		"list endpoints (v1)": func() error { _, err := sa.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{}); return err },
		"delete endpointslice": func() error {
			return sa.DiscoveryV1().EndpointSlices("default").Delete(ctx, "kubernetes", metav1.DeleteOptions{})
		},
		"patch service": func() error {
			_, err := sa.CoreV1().Services("default").Patch(ctx, "kubernetes", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"list daemonsets":      func() error { _, err := sa.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{}); return err },
		"list serviceaccounts": func() error { _, err := sa.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{}); return err },
		"create node": func() error {
			_, err := sa.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"update node": func() error {
			n, err := admin.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = sa.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		},
		"patch node": func() error {
			_, err := sa.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"patch node status": func() error {
			_, err := sa.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, []byte(`{"status":{"addresses":[]}}`), metav1.PatchOptions{}, "status")
			return err
		},
		"delete node": func() error { return sa.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}) },
		"proxy to node": func() error {
			return sa.CoreV1().RESTClient().Get().Resource("nodes").Name("n1").SubResource("proxy").Do(ctx).Error()
		},
	}
	for what, f := range denied {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: want forbidden, got %v", what, err)
		}
	}

	// Minimal: the server's own list of what this account may do, less what
	// an account without any binding may do (RBAC's defaults for every
	// authenticated user: self reviews, public cluster trust bundles, ...),
	// is exactly nodes get/list/watch, services and endpointslices list/watch.
	if _, err := admin.CoreV1().ServiceAccounts("kube-system").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "baseline"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	btr, err := admin.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "baseline",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	baseline, err := kubernetes.NewForConfig(cp.TokenConfig(btr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"kube-system", "default"} {
		extra := permissions(t, sa, ns)
		for p := range permissions(t, baseline, ns) {
			delete(extra, p)
		}
		want := map[string]bool{"/nodes get": true, "/nodes list": true, "/nodes watch": true,
			"/services list": true, "/services watch": true,
			"discovery.k8s.io/endpointslices list": true, "discovery.k8s.io/endpointslices watch": true}
		if !maps.Equal(extra, want) {
			t.Errorf("namespace %s: the ServiceAccount may do %v beyond the defaults, want exactly %v", ns, slices.Sorted(maps.Keys(extra)), slices.Sorted(maps.Keys(want)))
		}
	}
}

// permissions lists "group/resource verb" for every resource rule the
// server reports for c's account in namespace ns.
func permissions(t *testing.T, c kubernetes.Interface, ns string) map[string]bool {
	t.Helper()
	rr, err := c.AuthorizationV1().SelfSubjectRulesReviews().Create(context.Background(), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status.Incomplete {
		t.Fatalf("rules review incomplete: %s", rr.Status.EvaluationError)
	}
	out := map[string]bool{}
	for _, r := range rr.Status.ResourceRules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					name := g + "/" + res + " " + v
					if len(r.ResourceNames) > 0 {
						name += " " + strings.Join(r.ResourceNames, ",")
					}
					out[name] = true
				}
			}
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
