package lab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// The lab's tunnel key file: one per lab, shared by its nodes, a valid key
// file, private, and gone with the lab.
func TestTunnelKeyFile(t *testing.T) {
	l := &Lab{}
	args := l.DaemonArgs(0, DaemonConfig{Transport: "tunnel"})
	path := args[len(args)-1]
	if args[len(args)-2] != "--tunnel-key-file" || path == "" {
		t.Fatalf("args end %v", args[len(args)-2:])
	}
	if again := l.DaemonArgs(1, DaemonConfig{Transport: "tunnel"}); again[len(again)-1] != path {
		t.Fatalf("node 2 got another key file %s", again[len(again)-1])
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v", st, err)
	}
	b, _ := os.ReadFile(path)
	if ring, err := tunnelwire.ParseKeyFile(b); err != nil || ring.Len() != 1 {
		t.Fatalf("key file does not parse: %v", err)
	}
	for _, a := range l.DaemonArgs(0, DaemonConfig{Transport: "l2"}) {
		if a == "--tunnel-key-file" {
			t.Fatal("a key file for the l2 transport")
		}
	}
	l.removeTunnelKey()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("key directory left behind: %v", err)
	}
}
