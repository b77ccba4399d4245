package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runtimeConfig: the test's own containerd, everything under one temp
// directory (%[1]s), without the snapshotters this machine has no use for;
// %[2]s disables the CRI plugin or configures it.
const runtimeConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.internal.v1.opt",%[2]s
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "%[1]s/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"
[metrics]
  address = ""
%[3]s`

// criConfig is the CRI plugin's, for a kubelet. restrict_oom_score_adj:
// the CRI gives every pod sandbox oom_score_adj -998, and lowering it
// needs CAP_SYS_RESOURCE, which root lacks on this machine (its bounding
// set): runc's child dies on the write and runc reports only "can't get
// final child's PID from pipe: EOF" (docs/cluster-test.md). Restricted,
// scores below containerd's own become its own.
const criConfig = `[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[1]s"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[2]s/cni"
    conf_dir = "%[2]s/cni"
`

const cniConfig = `{"cniVersion": "1.0.0", "name": "lab", "plugins": [{"type": "loopback"}]}`

// RuntimeOptions: where containerd runs and whether a kubelet will use it.
type RuntimeOptions struct {
	// NetNS, if set, is the network namespace containerd runs in (the
	// node's, for a kubelet's hostNetwork pods).
	NetNS string
	// SandboxImage, if set, enables the CRI plugin with it as the pause image.
	SandboxImage string
	// Setup, if set, are shell commands run in containerd's new mount
	// namespace before it starts (a kubelet joins that namespace).
	Setup string
}

// ctrNamespace is the containerd namespace the test's containers live in.
const ctrNamespace = "go-pmtud-test"

// Runtime is a containerd started by the test.
type Runtime struct {
	ns  string // the containerd namespace (k8s.io for the CRI's)
	dir string
	cmd *exec.Cmd
	log *os.File
}

// StartRuntime starts containerd in its own mount namespace: mounts made
// on the host (the lab's named network namespaces) propagate into it, its
// own (container root filesystems) never out. It is stopped, every
// container and shim with it, by the test's cleanup, also on failure.
func StartRuntime(t *testing.T, o RuntimeOptions) *Runtime {
	t.Helper()
	dir, err := os.MkdirTemp("", "go-pmtud-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{dir: dir, ns: ctrNamespace}
	t.Cleanup(r.stop)
	disable, cri := `
  "io.containerd.grpc.v1.cri",`, ""
	if o.SandboxImage != "" {
		r.ns, disable, cri = "k8s.io", "", fmt.Sprintf(criConfig, o.SandboxImage, dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "cni"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The CRI reports the network ready once it has loaded a CNI network;
	// hostNetwork pods never call a plugin, so none is installed. Without
	// it the Node would stay NotReady.
	if err := os.WriteFile(filepath.Join(dir, "cni", "10-lab.conflist"), []byte(cniConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, runtimeConfig, dir, disable, cri), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.log, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command("unshare", "--mount", "--propagation", "slave", "containerd", "--config", cfg)
	if o.Setup != "" {
		// exec: containerd keeps the pid, so MountNS finds its namespace.
		r.cmd = exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", o.Setup+"\nexec containerd --config "+cfg)
	}
	if o.NetNS != "" {
		r.cmd = exec.Command("nsenter", append([]string{"--net=" + o.NetNS}, r.cmd.Args...)...)
	}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("containerd: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := r.Ctr("version"); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer within 20 s; log:\n%s", r.Log(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ctr runs ctr against this containerd, in the test's namespace.
func (r *Runtime) Ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--address", filepath.Join(r.dir, "containerd.sock"), "--namespace", r.ns}, args...)
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Log is the last lines of containerd's log.
func (r *Runtime) Log(lines int) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "containerd.log"))
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// Socket is containerd's address (for the kubelet).
func (r *Runtime) Socket() string { return filepath.Join(r.dir, "containerd.sock") }

// MountNS is containerd's mount namespace (a kubelet joins it).
func (r *Runtime) MountNS() string { return fmt.Sprintf("/proc/%d/ns/mnt", r.cmd.Process.Pid) }

// stop removes every container, stops containerd, kills any shim still
// running (by the pid it recorded) and removes the directory.
func (r *Runtime) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		if out, err := r.Ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = r.Ctr("tasks", "kill", "-s", "SIGKILL", id)
			}
		}
		time.Sleep(200 * time.Millisecond)
		if out, err := r.Ctr("containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = r.Ctr("tasks", "rm", "-f", id)
				_, _ = r.Ctr("containers", "rm", id)
			}
		}
		stopGroup(r.cmd)
	}
	r.killShims()
	if r.log != nil {
		r.log.Close()
	}
	_ = os.RemoveAll(r.dir)
	r.removeHostState()
}

// removeHostState removes what runc leaves outside the runtime's
// directory once every container is gone: its state directory and the
// parent cgroup of the namespace's containers in each v1 hierarchy (empty
// by then; a non-empty one is left, and rmdir says so by failing).
func (r *Runtime) removeHostState() {
	_ = os.Remove(filepath.Join("/run/containerd/runc", r.ns))
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", r.ns))
	dirs2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "unified", r.ns))
	for _, d := range append(dirs, dirs2...) {
		_ = os.Remove(d)
	}
}

// killShims kills the shims (and so their containers) this containerd
// started, found by the pid files under its state directory.
func (r *Runtime) killShims() {
	pids, _ := filepath.Glob(filepath.Join(r.dir, "state", "io.containerd.runtime.v2.task", "*", "*", "shim.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
