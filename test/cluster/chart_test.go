package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/go-pmtud/go-pmtud/internal/lab"
)

// Release is the chart rendered for the lab, as `helm install` would
// apply it: the DaemonSet's pod template and the Secrets it mounts.
type Release struct {
	Pod     corev1.PodSpec
	Image   string
	Grace   time.Duration
	Secrets map[string]corev1.Secret
}

// renderChart runs `helm template` on deploy/helm/go-pmtud as the README's
// install does (image repository and tag set), with the lab's transport.
// The lab has no API server, so peers are the lab's nodes, static, and
// Kubernetes discovery is off; everything else is the chart's default.
func renderChart(t *testing.T, l *lab.Lab, transport, tag string) Release {
	t.Helper()
	var peers []string
	for i := range l.Nodes {
		for _, f := range []lab.Family{lab.IPv4, lab.IPv6} {
			peers = append(peers, fmt.Sprintf("%q", lab.NodeName(i)+"="+l.NodeAddr(f, i).String()))
		}
	}
	values := fmt.Sprintf("image: {repository: %s, tag: %q}\ntransport: %s\nkubernetes: {enabled: false}\npeers: [%s]\n",
		imageRepo, tag, transport, strings.Join(peers, ", "))
	vf := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, helmBin, "template", "go-pmtud", "deploy/helm/go-pmtud", "-n", "kube-system", "-f", vf)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v: %s", err, stderr.String())
	}
	rel, err := parseRelease(out)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// parseRelease finds the DaemonSet and the Secrets in a rendered chart.
func parseRelease(manifest []byte) (Release, error) {
	rel := Release{Secrets: map[string]corev1.Secret{}}
	found := false
	for _, doc := range bytes.Split(manifest, []byte("\n---")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return rel, err
		}
		switch meta.Kind {
		case "DaemonSet":
			var ds appsv1.DaemonSet
			if err := yaml.Unmarshal(doc, &ds); err != nil {
				return rel, err
			}
			rel.Pod, found = ds.Spec.Template.Spec, true
		case "Secret":
			var s corev1.Secret
			if err := yaml.Unmarshal(doc, &s); err != nil {
				return rel, err
			}
			rel.Secrets[s.Name] = s
		}
	}
	if !found || len(rel.Pod.Containers) == 0 {
		return rel, fmt.Errorf("no DaemonSet in the rendered chart")
	}
	rel.Image = rel.Pod.Containers[0].Image
	if g := rel.Pod.TerminationGracePeriodSeconds; g != nil {
		rel.Grace = time.Duration(*g) * time.Second
	}
	return rel, nil
}

// secretDirs writes each Secret volume's files into a directory, as the
// kubelet does (data keys as files, defaultMode), and maps the volume's
// name to it.
func secretDirs(t *testing.T, rel Release) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	for _, v := range rel.Pod.Volumes {
		if v.Secret == nil {
			continue
		}
		s, ok := rel.Secrets[v.Secret.SecretName]
		if !ok {
			t.Fatalf("volume %s: Secret %s is not in the chart", v.Name, v.Secret.SecretName)
		}
		mode := os.FileMode(0o644)
		if v.Secret.DefaultMode != nil {
			mode = os.FileMode(*v.Secret.DefaultMode)
		}
		dir := t.TempDir()
		for k, val := range s.Data {
			if err := os.WriteFile(filepath.Join(dir, k), val, mode); err != nil {
				t.Fatal(err)
			}
		}
		for k, val := range s.StringData {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(val), mode); err != nil {
				t.Fatal(err)
			}
		}
		dirs[v.Name] = dir
	}
	return dirs
}
