// Package cluster runs go-pmtud's DaemonSet pod in a real container runtime
// (containerd and runc from Debian) inside the node namespaces of the ECMP
// lab: the image is built here without Docker, the container gets exactly
// the DaemonSet's securityContext, mounts, environment and memory limit, and
// the lab's download must stall without it and complete with it. Why a
// kubelet does not start the pods: docs/cluster-test.md.
//
// This file translates a pod template into `ctr run` flags; it is pure, so
// its refusals (anything the emulation cannot reproduce) are unit-tested
// without privileges.
package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Node is what a kubelet would know of its node: the downward API's
// spec.nodeName and status.hostIP, and the network namespace hostNetwork
// pods share.
type Node struct {
	Name   string
	HostIP string
	NetNS  string // path, e.g. /var/run/netns/pl1234-node1
}

// Container is one container of the pod, as `ctr run` will start it.
type Container struct {
	Flags []string // ctr run flags
	Argv  []string // the process: the image's entrypoint, then the args
}

// defaultCaps are containerd's default capabilities (oci.populateDefaultUnixSpec):
// `drop: [ALL]` drops each, since ctr refuses ALL.
var defaultCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}

// Translate turns the pod's only container into ctr run flags for node.
// entrypoint is the image's; dirs maps a non-hostPath volume's name (a
// Secret's) to a host directory holding its files. Anything the emulation
// would not reproduce exactly is an error, not silently dropped.
func Translate(pod corev1.PodSpec, node Node, entrypoint []string, dirs map[string]string) (Container, error) {
	if !pod.HostNetwork {
		return Container{}, fmt.Errorf("pod is not hostNetwork: the emulation joins the node's namespace")
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		return Container{}, fmt.Errorf("want exactly one container, have %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if len(c.Command) != 0 {
		entrypoint = c.Command
	}
	flags := []string{"--with-ns", "network:" + node.NetNS}
	steps := []func() ([]string, error){
		func() ([]string, error) { return securityFlags(c.SecurityContext) },
		func() ([]string, error) { return resourceFlags(c.Resources) },
		func() ([]string, error) { return envFlags(c, node) },
		func() ([]string, error) { return mountFlags(pod, c, dirs) },
	}
	for _, step := range steps {
		f, err := step()
		if err != nil {
			return Container{}, fmt.Errorf("container %s: %w", c.Name, err)
		}
		flags = append(flags, f...)
	}
	return Container{Flags: flags, Argv: append(slices.Clone(entrypoint), c.Args...)}, nil
}

func securityFlags(sc *corev1.SecurityContext) ([]string, error) {
	if sc == nil {
		return nil, fmt.Errorf("no securityContext")
	}
	var f []string
	if sc.Privileged != nil && *sc.Privileged {
		return nil, fmt.Errorf("privileged is not emulated")
	}
	// ctr always sets no_new_privs: only allowPrivilegeEscalation: false matches.
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		return nil, fmt.Errorf("allowPrivilegeEscalation must be false (ctr sets no_new_privs)")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsGroup != nil {
		return nil, fmt.Errorf("only runAsUser: 0 (the image's user) is emulated")
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		f = append(f, "--read-only")
	}
	capf, err := capFlags(sc.Capabilities)
	if err != nil {
		return nil, err
	}
	f = append(f, capf...)
	switch {
	case sc.SeccompProfile == nil:
		return nil, fmt.Errorf("no seccompProfile: the kubelet's default depends on its configuration")
	case sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault:
		f = append(f, "--seccomp")
	case sc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined:
		return nil, fmt.Errorf("seccompProfile %s is not emulated", sc.SeccompProfile.Type)
	}
	if sc.SELinuxOptions != nil || sc.AppArmorProfile != nil || sc.ProcMount != nil {
		return nil, fmt.Errorf("SELinux, AppArmor and procMount are not emulated")
	}
	return f, nil
}

func capFlags(c *corev1.Capabilities) ([]string, error) {
	if c == nil {
		return nil, nil
	}
	var f []string
	added := map[string]bool{}
	for _, a := range c.Add {
		name := strings.TrimPrefix(string(a), "CAP_")
		added[name] = true
		f = append(f, "--cap-add", "CAP_"+name)
	}
	for _, d := range c.Drop {
		if d != "ALL" {
			return nil, fmt.Errorf("drop %s: only ALL is emulated", d)
		}
		// Whatever order ctr applies adds and drops in, an added
		// capability must not be dropped again.
		for _, name := range defaultCaps {
			if !added[name] {
				f = append(f, "--cap-drop", "CAP_"+name)
			}
		}
	}
	return f, nil
}

func resourceFlags(r corev1.ResourceRequirements) ([]string, error) {
	var f []string
	for name, q := range r.Limits {
		switch name {
		case corev1.ResourceMemory:
			f = append(f, "--memory-limit", strconv.FormatInt(q.Value(), 10))
		default:
			return nil, fmt.Errorf("limit %s is not emulated", name)
		}
	}
	return f, nil // requests only weigh in scheduling
}

func envFlags(c corev1.Container, node Node) ([]string, error) {
	if len(c.EnvFrom) != 0 {
		return nil, fmt.Errorf("envFrom is not emulated")
	}
	var f []string
	for _, e := range c.Env {
		v, err := envValue(c, e, node)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		f = append(f, "--env", e.Name+"="+v)
	}
	return f, nil
}

// envValue is e's value as the kubelet would set it (the downward API's
// fields a hostNetwork pod on node can have).
func envValue(c corev1.Container, e corev1.EnvVar, node Node) (string, error) {
	src := e.ValueFrom
	switch {
	case src == nil:
		return e.Value, nil
	case src.FieldRef != nil:
		switch src.FieldRef.FieldPath {
		case "spec.nodeName":
			return node.Name, nil
		case "status.hostIP", "status.podIP":
			return node.HostIP, nil
		}
		return "", fmt.Errorf("fieldRef %s is not emulated", src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil && src.ResourceFieldRef.Resource == "limits.memory":
		if rc := src.ResourceFieldRef.ContainerName; rc != "" && rc != c.Name {
			return "", fmt.Errorf("resourceFieldRef of another container %s", rc)
		}
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			return "", fmt.Errorf("limits.memory without a memory limit (the kubelet would give the node's allocatable)")
		}
		div := int64(1)
		if d := src.ResourceFieldRef.Divisor; !d.IsZero() {
			div = d.Value()
		}
		return strconv.FormatInt((q.Value()+div-1)/div, 10), nil
	}
	return "", fmt.Errorf("valueFrom is not emulated")
}

func mountFlags(pod corev1.PodSpec, c corev1.Container, dirs map[string]string) ([]string, error) {
	var f []string
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" || m.MountPropagation != nil {
			return nil, fmt.Errorf("mount %s: subPath and propagation are not emulated", m.Name)
		}
		src, err := volumeSource(pod, m.Name, dirs)
		if err != nil {
			return nil, err
		}
		opt := "rbind:rw"
		if m.ReadOnly {
			opt = "rbind:ro"
		}
		f = append(f, "--mount", "type=bind,src="+src+",dst="+m.MountPath+",options="+opt)
	}
	return f, nil
}

func volumeSource(pod corev1.PodSpec, name string, dirs map[string]string) (string, error) {
	for _, v := range pod.Volumes {
		if v.Name != name {
			continue
		}
		if v.HostPath != nil {
			return v.HostPath.Path, nil
		}
		if d, ok := dirs[name]; ok {
			return d, nil
		}
		return "", fmt.Errorf("volume %s: only hostPath and volumes given a directory are emulated", name)
	}
	return "", fmt.Errorf("mount of undeclared volume %s", name)
}
