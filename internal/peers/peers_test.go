package peers

import (
	"net/netip"
	"testing"
	"time"
)

func mustPeers(addrs ...string) []Peer {
	var out []Peer
	for _, a := range addrs {
		out = append(out, PeerAt(netip.MustParseAddr(a)))
	}
	return out
}

func TestSetSortsDedupsExcludesAndSplitsFamilies(t *testing.T) {
	self := netip.MustParseAddr("10.0.0.1")
	s := NewSet(append(mustPeers("10.0.0.3", "fd00::2", "10.0.0.1", "::ffff:10.0.0.2", "10.0.0.3"), Peer{}), self)
	got := []string{}
	for _, p := range s.All() {
		got = append(got, p.Addr().String())
	}
	want := []string{"10.0.0.2", "10.0.0.3", "fd00::2"}
	if len(got) != len(want) {
		t.Fatalf("peers = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("peers = %v, want %v", got, want)
		}
	}
	if len(s.Family(4)) != 2 || len(s.Family(6)) != 1 {
		t.Fatalf("families: v4=%d v6=%d", len(s.Family(4)), len(s.Family(6)))
	}
	if !s.Contains(netip.MustParseAddr("::ffff:10.0.0.3")) || s.Contains(self) {
		t.Fatal("Contains must unmap and must not list our own address")
	}
	if s.All()[0].Name != "10.0.0.2" {
		t.Fatalf("a peer without a name is named by its address, got %q", s.All()[0].Name)
	}
}

func TestSetOneNodeOneFrame(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")
	// The Kubernetes source lists node2 with both families; --peers lists
	// the IPv4 address again and a single-family node3.
	s := NewSet([]Peer{
		{Name: "node2", V4: v4},
		{Name: "node2", V6: v6},
		PeerAt(v4),
		PeerAt(netip.MustParseAddr("fd00::3")),
	})
	if s.Len() != 2 {
		t.Fatalf("peers = %+v, want node2 and fd00::3", s.All())
	}
	n2 := s.All()[s.Index(v6)]
	if n2.Name != "node2" || n2.V4 != v4 || n2.V6 != v6 || s.Index(v4) != s.Index(v6) {
		t.Fatalf("node2 = %+v: both addresses must be one node under its name", n2)
	}
	if len(s.Family(4)) != 1 || len(s.Family(6)) != 2 {
		t.Fatalf("families: v4=%d v6=%d, want 1 and 2", len(s.Family(4)), len(s.Family(6)))
	}
	if got := NewSet(s.All(), v6).Len(); got != 1 {
		t.Fatalf("excluding one address of a node must exclude the node: %d peers left", got)
	}
	if s.Index(netip.MustParseAddr("10.0.0.9")) != -1 {
		t.Fatal("unknown address must not be found")
	}
}

func TestNilSetIsEmpty(t *testing.T) {
	var s *Set
	if s.Len() != 0 || s.Contains(netip.MustParseAddr("10.0.0.1")) || s.Family(4) != nil {
		t.Fatal("nil set must behave as empty")
	}
}

func TestRegistryMergesSourcesAndSignalsOnlyOnChange(t *testing.T) {
	r := NewRegistry(netip.MustParseAddr("10.0.0.1"))
	if r.Snapshot() == nil || r.Snapshot().Len() != 0 {
		t.Fatal("a new registry has an empty, non-nil snapshot")
	}
	r.Update("static", mustPeers("10.0.0.2"))
	r.Update("kubernetes", mustPeers("10.0.0.2", "10.0.0.3", "10.0.0.1"))
	if got := r.Snapshot().Len(); got != 2 {
		t.Fatalf("merged peers = %d, want 2", got)
	}
	select {
	case <-r.Changed():
	case <-time.After(time.Second):
		t.Fatal("no change signal after updates")
	}
	r.Update("kubernetes", mustPeers("10.0.0.3", "10.0.0.2")) // same set, other order
	select {
	case <-r.Changed():
		t.Fatal("change signalled although the merged set is the same")
	default:
	}
	counts := r.Counts()
	if counts["static"] != 1 || counts["kubernetes"] != 2 {
		t.Fatalf("counts = %v", counts)
	}
	r.Update("kubernetes", nil)
	if got := r.Snapshot().Len(); got != 1 {
		t.Fatalf("after the kubernetes source emptied, peers = %d, want 1 (static)", got)
	}
}
