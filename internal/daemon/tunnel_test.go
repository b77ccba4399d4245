package daemon

import (
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// peerNames follows the registry: a peer that joins is known at once, one
// that leaves is refused at once, and names come from the peer set.
func TestPeerNames(t *testing.T) {
	reg := peers.NewRegistry()
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::3")
	reg.Update("static", []peers.Peer{{Name: "n2", V4: a}})
	p := &peerNames{reg: reg}
	if name, ok := p.lookup(a); !ok || name != "n2" {
		t.Fatalf("lookup(%v) = %q, %v", a, name, ok)
	}
	if _, ok := p.lookup(b); ok {
		t.Fatal("unknown address accepted")
	}
	reg.Update("static", []peers.Peer{{Name: "n3", V6: b}})
	if name, ok := p.lookup(b); !ok || name != "n3" {
		t.Fatalf("after the update: lookup(%v) = %q, %v", b, name, ok)
	}
	if _, ok := p.lookup(a); ok {
		t.Fatal("a peer that left is still accepted")
	}
	n := testing.AllocsPerRun(100, func() { p.lookup(b) })
	if n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}
