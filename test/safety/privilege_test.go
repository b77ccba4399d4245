//go:build linux

package safety_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestLeastPrivilege runs go-pmtud as user nobody with CAP_NET_ADMIN and
// CAP_NET_RAW as its only capabilities (ambient, so they survive exec):
// it must start, install its table, relay, and on SIGTERM remove the table
// and, with l2, the managed neighbour entries it added (the only host state
// it changes besides its own table).
func TestLeastPrivilege(t *testing.T) {
	for _, transport := range []string{"routed", "l2"} {
		t.Run(transport, func(t *testing.T) {
			s := testnet.NewSegment(t, "psl", 2, 1)
			ns := s.Nodes[0]
			attr := &syscall.SysProcAttr{
				Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: false},
				AmbientCaps: []uintptr{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW},
			}
			node := testnet.StartDaemon(t, ns, pmtud, nodeArgs(s, 0, "--transport", transport), attr)
			peer := testnet.StartDaemon(t, s.Nodes[1], pmtud, nodeArgs(s, 1, "--transport", transport), nil)
			node.WaitReady(t, 10*time.Second)
			peer.WaitReady(t, 10*time.Second)

			// What the process really holds (proc(5)).
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", node.Pid()))
			if err != nil {
				t.Fatal(err)
			}
			const want = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW // 0x3000
			for _, f := range []string{"CapEff", "CapPrm"} {
				if v := statusField(string(status), f); v != fmt.Sprintf("%016x", want) {
					t.Errorf("%s = %s, want %016x", f, v, want)
				}
			}
			if uid := statusField(string(status), "Uid"); !strings.HasPrefix(uid, "65534") {
				t.Errorf("Uid = %s, want 65534", uid)
			}

			if tb := testnet.ListTable(t, ns); tb == nil || tb.Rules != 2 {
				t.Fatalf("table: %+v", tb)
			}
			p := &pair{s: s, node: node, peer: peer, fi: s.NewFrameInjector(t, 0, 0)}
			p.relays(t, node, 46000)

			// l2 adds a managed entry only for a peer the kernel has not
			// already learned (an ARP request from the peer teaches it), so
			// zero is possible; every one added must be removed and logged.
			managed := managedNeighbours(t, ns)
			took := sigterm(t, node)
			if testnet.TablePresent(t, ns) {
				t.Error("table left behind")
			}
			if n := managedNeighbours(t, ns); n != 0 {
				t.Errorf("%d managed neighbour entries left behind", n)
			}
			// Host changes are logged, both ways.
			for _, line := range []string{"firewall table installed", "firewall table removed"} {
				if !strings.Contains(node.Log(), line) {
					t.Errorf("log lacks %q", line)
				}
			}
			if transport == "l2" {
				added := strings.Count(node.Log(), "added a managed neighbour entry")
				removed := strings.Count(node.Log(), "removed the managed neighbour entry")
				if added != managed || removed != managed {
					t.Errorf("log: %d managed neighbour entries added, %d removed, want %d each", added, removed, managed)
				}
			}
			t.Logf("as nobody with CapEff %s: relayed, exit 0 in %v, table and %d managed neighbour entries removed",
				statusField(string(status), "CapEff"), took.Round(time.Millisecond), managed)
		})
	}
}

func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// managedNeighbours counts the neighbour entries in ns that carry
// NTF_EXT_MANAGED, the kind l2 adds to resolve peers.
func managedNeighbours(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	err := netnsutil.DoNamed(ns, func() error {
		list, err := netlink.NeighList(0, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, e := range list {
			if e.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
