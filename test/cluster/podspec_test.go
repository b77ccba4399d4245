package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// manifestPod is deploy/daemonset.yaml's pod template with the tunnel's
// volumes added as its header says: the same container the chart renders.
func manifestPod(t *testing.T) corev1.PodSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Spec struct {
			Template struct{ Spec corev1.PodSpec }
		}
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	pod := ds.Spec.Template.Spec
	charDev := corev1.HostPathCharDev
	pod.Volumes = append(pod.Volumes,
		corev1.Volume{Name: "dev-net-tun", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/dev/net/tun", Type: &charDev}}},
		corev1.Volume{Name: "tunnel-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "go-pmtud-tunnel"}}})
	pod.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "dev-net-tun", MountPath: "/dev/net/tun"},
		{Name: "tunnel-keys", MountPath: "/etc/go-pmtud/tunnel", ReadOnly: true},
	}
	return pod
}

var testNode = Node{Name: "node2", HostIP: "192.0.2.2", NetNS: "/var/run/netns/x-node2"}

func TestTranslateManifest(t *testing.T) {
	c, err := Translate(manifestPod(t), testNode, []string{"/go-pmtud"}, map[string]string{"tunnel-keys": "/tmp/keys"})
	if err != nil {
		t.Fatal(err)
	}
	flags := strings.Join(c.Flags, " ")
	for _, want := range []string{
		"--with-ns network:/var/run/netns/x-node2",
		"--read-only",
		"--cap-drop CAP_CHOWN", "--cap-drop CAP_SETUID", "--cap-drop CAP_AUDIT_WRITE",
		"--cap-add CAP_NET_ADMIN --cap-add CAP_NET_RAW",
		"--seccomp",
		"--memory-limit 134217728",
		"--env PMTUD_NODENAME=node2",
		"--env PMTUD_METRICS_ADDRESS=192.0.2.2",
		"--env PMTUD_HEALTH_ADDRESS=192.0.2.2",
		"--env GOMEMLIMIT=134217728",
		"--env PMTUD_TRANSPORT=l2",
		"--mount type=bind,src=/dev/net/tun,dst=/dev/net/tun,options=rbind:rw",
		"--mount type=bind,src=/tmp/keys,dst=/etc/go-pmtud/tunnel,options=rbind:ro",
	} {
		if !strings.Contains(flags, want) {
			t.Errorf("no %q in %s", want, flags)
		}
	}
	// An added capability is not also dropped: ctr would apply both, in
	// its own order.
	if strings.Contains(flags, "--cap-drop CAP_NET_RAW") || strings.Contains(flags, "--cap-drop CAP_NET_ADMIN") {
		t.Errorf("an added capability is dropped too: %s", flags)
	}
	if !slices.Equal(c.Argv, []string{"/go-pmtud"}) {
		t.Errorf("argv %v, want the entrypoint alone", c.Argv)
	}
}

// TestTranslateRefuses: what the emulation cannot reproduce is an error.
func TestTranslateRefuses(t *testing.T) {
	yes, no := true, false
	uid := int64(1000)
	for name, mutate := range map[string]func(*corev1.PodSpec){
		"not hostNetwork":      func(p *corev1.PodSpec) { p.HostNetwork = false },
		"privileged":           func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.Privileged = &yes },
		"privilege escalation": func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes },
		"escalation unset":     func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil },
		"another user":         func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.RunAsUser = &uid },
		"drop one capability only": func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext.Capabilities.Drop = []corev1.Capability{"CHOWN"}
		},
		"no seccomp profile": func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.SeccompProfile = nil },
		"cpu limit": func(p *corev1.PodSpec) {
			p.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("1")
		},
		"unknown fieldRef": func(p *corev1.PodSpec) {
			p.Containers[0].Env = append(p.Containers[0].Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}})
		},
		"subPath": func(p *corev1.PodSpec) { p.Containers[0].VolumeMounts[1].SubPath = "tunnel.keys" },
		"two containers": func(p *corev1.PodSpec) {
			p.Containers = append(p.Containers, p.Containers[0])
		},
		"privileged with a writable root": func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &no
			p.Containers[0].SecurityContext.Privileged = &yes
		},
	} {
		t.Run(name, func(t *testing.T) {
			pod := manifestPod(t)
			mutate(&pod)
			if _, err := Translate(pod, testNode, []string{"/go-pmtud"}, map[string]string{"tunnel-keys": "/tmp/keys"}); err == nil {
				t.Error("translated; want an error")
			}
		})
	}
	// A Secret volume nobody wrote out.
	if _, err := Translate(manifestPod(t), testNode, []string{"/go-pmtud"}, nil); err == nil {
		t.Error("translated a Secret volume without its directory")
	}
}

func TestExitCode(t *testing.T) {
	for out, want := range map[string]int{
		"": 0,
		`time="x" level=warning msg="task pl1-node1-2 exit with non-zero exit code 137"`: 137,
		"WARN[0000] task x exit with non-zero exit code 1\n":                             1,
	} {
		if got := exitCode(out); got != want {
			t.Errorf("exitCode(%q) = %d, want %d", out, got, want)
		}
	}
}
