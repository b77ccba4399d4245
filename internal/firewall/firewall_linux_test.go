package firewall

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// newNetNS creates a named network namespace with the ip tool and returns an
// fd for it; the namespace is deleted when the test ends, pass or fail.
// Nothing here enters the namespace: the fd is handed to nftables.
func newNetNS(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create a network namespace")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "pmtudfw-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// tableState lists what the namespace holds of our table: whether it
// exists, and the expressions of each rule in its chain.
func tableState(t *testing.T, c *nftables.Conn) (bool, [][]expr.Any) {
	t.Helper()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	n := 0
	for _, tab := range tables {
		if tab.Name == TableName {
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	if n > 1 {
		t.Fatalf("%d tables named %s", n, TableName)
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list chains: %v", err)
	}
	var rules [][]expr.Any
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		if ch.Name != ChainName || ch.Type != nftables.ChainTypeFilter ||
			*ch.Hooknum != *nftables.ChainHookPrerouting || *ch.Priority != *nftables.ChainPriorityRaw ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyAccept {
			t.Errorf("unexpected chain %+v", ch)
		}
		rs, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("list rules: %v", err)
		}
		for _, r := range rs {
			rules = append(rules, r.Exprs)
		}
	}
	return true, rules
}

func TestTableInNetNS(t *testing.T) {
	fd := newNetNS(t)
	cfg := Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 500, Burst: 1000}
	tab, err := New(cfg, nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]expr.Any{rule4Exprs(cfg, "eth0"), rule6Exprs(cfg, "eth0")}
	check := func(step string) {
		t.Helper()
		ok, rules := tableState(t, c)
		if !ok {
			t.Fatalf("%s: table %s missing", step, TableName)
		}
		if !reflect.DeepEqual(rules, want) {
			t.Fatalf("%s: rules differ:\n got %d rules: %s\nwant %d rules", step, len(rules), dumpAll(rules), len(want))
		}
		if err := tab.Verify(); err != nil {
			t.Fatalf("%s: Verify: %v", step, err)
		}
	}

	if err := tab.Verify(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Verify before Install = %v, want ErrNotInstalled", err)
	}
	if err := tab.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	check("first Install")
	if err := tab.Install(); err != nil {
		t.Fatalf("second Install: %v", err)
	}
	check("second Install")

	// A stale table from a run with another config (and an extra rule):
	// Install must replace it wholesale.
	stale, _ := New(Config{Ifaces: []string{"eth9"}, Group: 99}, nftables.WithNetNSFd(fd))
	if err := stale.Install(); err != nil {
		t.Fatal(err)
	}
	_, chain, rules := objects(Config{Group: 7})
	c.AddRule(rules[0])
	if err := c.Flush(); err != nil {
		t.Fatalf("add extra rule: %v", err)
	}
	if err := tab.Verify(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Verify with stale table = %v, want ErrNotInstalled", err)
	}
	if err := tab.Install(); err != nil {
		t.Fatalf("Install over stale table: %v", err)
	}
	check("Install over stale table")

	// Someone flushes our chain (a firewall reload): readiness must notice.
	c.FlushChain(chain)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := tab.Verify(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Verify after flush = %v, want ErrNotInstalled", err)
	}

	if err := tab.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if ok, _ := tableState(t, c); ok {
		t.Fatal("table still present after Remove")
	}
	if err := tab.Verify(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Verify after Remove = %v, want ErrNotInstalled", err)
	}
	if err := tab.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// TestSourceLimitInNetNS installs the per-source limit: the kernel takes
// the sets and the dynset rules in one batch, lists them back exactly as
// built (so Verify, and the daemon's re-check every 10 s, stay green), and
// Install over it replaces everything again.
func TestSourceLimitInNetNS(t *testing.T) {
	fd := newNetNS(t)
	cfg := Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 2000, SourceRatePerSecond: 500}
	tab, err := New(cfg, nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tab.Install(); err != nil {
			t.Fatalf("Install %d: %v", i+1, err)
		}
		_, rules := tableState(t, c)
		if want := [][]expr.Any{rule4Exprs(cfg, "eth0"), rule6Exprs(cfg, "eth0")}; !reflect.DeepEqual(rules, want) {
			t.Fatalf("rules differ:\n got %s\nwant %s", dumpAll(rules), dumpAll(want))
		}
		if err := tab.Verify(); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		got, err := c.GetSets(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d sets, want 2", len(got))
		}
		for _, s := range got {
			if !s.Dynamic || !s.HasTimeout || s.Timeout != SourceTimeout || s.Size != SourceSetSize {
				t.Errorf("set %s: dynamic %v timeout %v (%v) size %d", s.Name, s.Dynamic, s.HasTimeout, s.Timeout, s.Size)
			}
		}
	}
	if err := tab.Remove(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tableState(t, c); ok {
		t.Fatal("table still present after Remove")
	}
}

func dumpAll(rules [][]expr.Any) string {
	s := ""
	for _, r := range rules {
		s += "\n  " + dump(r)
	}
	return s
}

// TestTunnelFilterInNetNS: the kernel takes the tunnel sets and rules, lists
// the rules back as built (Verify stays green), the sets hold what
// SetTunnelPeers/SetTunnelAddrs put in, and a reinstall (after somebody
// flushed the ruleset) brings the elements back.
func TestTunnelFilterInNetNS(t *testing.T) {
	fd := newNetNS(t)
	cfg := Config{Ifaces: []string{"eth0"}, Group: 33, TunnelPort: 30042, TunnelSourceRate: 200, TunnelSourceBurst: 400}
	tab, err := New(cfg, nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Install(); err != nil {
		t.Fatal(err)
	}
	peers := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
	if err := tab.SetTunnelPeers(peers); err != nil {
		t.Fatal(err)
	}
	if err := tab.SetTunnelAddrs([]netip.Addr{netip.MustParseAddr("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if err := tab.Verify(); err != nil {
			t.Fatalf("%s: Verify: %v", when, err)
		}
		table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
		for name, want := range map[string]int{tunnelPeers4: 1, tunnelPeers6: 1, tunnelAddrs4: 1, tunnelAddrs6: 0} {
			set, err := c.GetSetByName(table, name)
			if err != nil {
				t.Fatalf("%s: set %s: %v", when, name, err)
			}
			els, err := c.GetSetElements(set)
			if err != nil || len(els) != want {
				t.Fatalf("%s: set %s has %d elements (%v), want %d", when, name, len(els), err, want)
			}
		}
	}
	check("installed")
	// Shrink the peer set: the update replaces, not adds.
	if err := tab.SetTunnelPeers(peers[:1]); err != nil {
		t.Fatal(err)
	}
	c.FlushRuleset()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := tab.Verify(); err == nil {
		t.Fatal("Verify passed after a flush")
	}
	if err := tab.Install(); err != nil {
		t.Fatal(err)
	}
	set, _ := c.GetSetByName(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}, tunnelPeers6)
	if els, _ := c.GetSetElements(set); len(els) != 0 {
		t.Fatalf("tunnel_peers6 after shrink and reinstall: %d elements, want 0", len(els))
	}
	if err := tab.Remove(); err != nil {
		t.Fatal(err)
	}
}
