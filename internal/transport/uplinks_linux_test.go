//go:build linux

package transport

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/peers"
)

// dualHomedLab: node n1 has two uplinks, eth0 to segment A (with n2) and
// eth1 to segment B (with n3), as a node dual-homed to two switches.
// n2 and n3 each see n1 on their own eth0.
func dualHomedLab(t *testing.T) (n1 string, n2, n3 labNode) {
	t.Helper()
	needRoot(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := "pmtudup-" + hex.EncodeToString(rnd[:])
	n1 = prefix + "-n1"
	n2 = labNode{ns: prefix + "-n2", v4: netip.MustParseAddr("10.81.0.2"), v6: netip.MustParseAddr("fd81::2")}
	n3 = labNode{ns: prefix + "-n3", v4: netip.MustParseAddr("10.82.0.3"), v6: netip.MustParseAddr("fd82::3")}
	for _, ns := range []string{n1, n2.ns, n3.ns} {
		run(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "-n", ns, "link", "set", "lo", "up")
	}
	for i, peer := range []*labNode{&n2, &n3} {
		up := []string{"eth0", "eth1"}[i]
		seg := []string{"81", "82"}[i]
		run(t, "-n", n1, "link", "add", up, "type", "veth", "peer", "name", "eth0", "netns", peer.ns)
		run(t, "-n", n1, "link", "set", up, "up")
		run(t, "-n", peer.ns, "link", "set", "eth0", "up")
		run(t, "-n", n1, "addr", "add", "10."+seg+".0.1/24", "dev", up)
		run(t, "-n", n1, "addr", "add", "fd"+seg+"::1/64", "dev", up, "nodad")
		run(t, "-n", peer.ns, "addr", "add", peer.v4.String()+"/24", "dev", "eth0")
		run(t, "-n", peer.ns, "addr", "add", peer.v6.String()+"/64", "dev", "eth0", "nodad")
		peer.mac = linkMAC(t, peer.ns, "eth0")
	}
	return n1, n2, n3
}

// TestL2AndBroadcastUseEveryUplink: l2 sends each peer's copy out of the
// uplink its neighbour entry lives on, an IPv6 message to a peer known by
// its IPv4 address included; broadcast sends one frame out of each uplink.
func TestL2AndBroadcastUseEveryUplink(t *testing.T) {
	n1, n2, n3 := dualHomedLab(t)
	var l2 *L2
	var bc *Broadcast
	in(t, n1, func() error {
		var err error
		if l2, err = NewL2(L2Config{Uplinks: []string{"eth0", "eth1"}, NeighborRefresh: time.Second}); err != nil {
			return err
		}
		bc, err = NewBroadcast(BroadcastConfig{Uplinks: []string{"eth0", "eth1"}})
		return err
	})
	t.Cleanup(func() { l2.Close(); bc.Close() })
	s2, s3 := sniff(t, n2.ns), sniff(t, n3.ns)
	to := []peers.Peer{n2.peer(4), n3.peer(4)} // known by IPv4 only
	l2.SetPeers(to)
	for _, f := range []uint8{4, 6} {
		m := ptbMessage(f, netip.MustParseAddr(map[uint8]string{4: "198.51.100.44", 6: "2001:db8:1::44"}[f]), 4444, 1400)
		el := &errLog{}
		sendUntil(t, l2, m, to, 2, el)
		for _, s := range []*sniffer{s2, s3} {
			if fr := s.next(t, 2*time.Second); fr == nil {
				t.Fatalf("l2 v%d: a peer behind one of the two uplinks got nothing", f)
			}
		}
		if n := bc.Send(m, to, el.on(to)); n != 2 {
			t.Fatalf("broadcast v%d: %d frames, want one per uplink", f, n)
		}
		for _, s := range []*sniffer{s2, s3} {
			// Skip unicast copies still queued: sendUntil may have sent a
			// round while only one peer was resolved.
			var fr []byte
			for fr = s.next(t, 2*time.Second); fr != nil && [6]byte(fr[0:6]) != broadcastMAC; fr = s.next(t, 2*time.Second) {
			}
			if fr == nil {
				t.Fatalf("broadcast v%d: no broadcast frame behind one uplink", f)
			}
		}
	}
	macs := l2.PeerMACs()
	if len(macs) != 2 {
		t.Fatalf("PeerMACs = %x, want n2's and n3's (one per uplink)", macs)
	}
}
