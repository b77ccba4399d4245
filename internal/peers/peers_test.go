package peers

import (
	"net/netip"
	"testing"
	"time"
)

func mustPeers(addrs ...string) []Peer {
	var out []Peer
	for _, a := range addrs {
		out = append(out, Peer{Addr: netip.MustParseAddr(a)})
	}
	return out
}

func TestSetSortsDedupsExcludesAndSplitsFamilies(t *testing.T) {
	self := netip.MustParseAddr("10.0.0.1")
	s := NewSet(append(mustPeers("10.0.0.3", "fd00::2", "10.0.0.1", "::ffff:10.0.0.2", "10.0.0.3"), Peer{}), self)
	got := []string{}
	for _, p := range s.All() {
		got = append(got, p.Addr.String())
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
