//go:build linux

package safety_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestUplinkDownUpAndRecreated: the uplink goes down and up, then is
// deleted and created again under the same name (a new ifindex). Capture
// and the firewall match by name; the l2 and broadcast transports are bound
// to the old ifindex and must be reopened. After each event a PTB must be
// relayed to both peers without send errors.
func TestUplinkDownUpAndRecreated(t *testing.T) {
	for _, tc := range []struct{ transport, copyReason string }{
		{"l2", "from_peer"},
		{"broadcast", "l2_broadcast"},
		{"routed", "from_peer"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			s := testnet.NewSegment(t, "psu", 3, 1)
			ds := s.Start(t, pmtud, tc.transport)
			node, peersOf := ds[0], ds[1:]
			ns := s.Nodes[0]
			r4, r6 := netip.MustParseAddr(s.R4[0]), netip.MustParseAddr(s.R6[0])
			dport := uint16(43000)
			relays := func(step string) {
				t.Helper()
				dport++
				fi := s.NewFrameInjector(t, 0, 0) // node 1's MAC may be new
				defer fi.Close()
				n0 := node.Metrics(t)
				var pb []map[string]float64
				for _, p := range peersOf {
					pb = append(pb, p.Metrics(t))
				}
				if err := fi.Send(good4(r4, 1400, dport)); err != nil {
					t.Fatal(err)
				}
				if err := fi.Send(good6(r6, 1400, dport)); err != nil {
					t.Fatal(err)
				}
				for i, p := range peersOf {
					testnet.WaitFor(t, step+": "+p.NS+" gets both copies", 3*time.Second, func() bool {
						return p.Metrics(t)[dropped(tc.copyReason)]-pb[i][dropped(tc.copyReason)] >= 2
					})
				}
				d := delta(n0, node.Metrics(t))
				for k, v := range d {
					if strings.HasPrefix(k, "gopmtud_send_errors_total") && v != 0 {
						t.Errorf("%s: %s grew by %v", step, k, v)
					}
				}
			}
			relays("before")

			// Down and up. IPv6 addresses and the IPv4 routes through the link
			// go with it (keep_addr_on_down=0): put the address back, as
			// the node's network manager would.
			testnet.IP(t, "-n", ns, "link", "set", "eth0", "down")
			time.Sleep(300 * time.Millisecond)
			testnet.IP(t, "-n", ns, "link", "set", "eth0", "up")
			testnet.IP(t, "-n", ns, "addr", "replace", s.V6[0]+"/64", "dev", "eth0", "nodad")
			node.WaitReady(t, 5*time.Second)
			relays("after down/up")

			// Deleted and recreated: same name, same addresses and MAC (so
			// the peers' view of it holds), new ifindex.
			mac := s.NodeMAC(t, 0).String()
			testnet.IP(t, "-n", ns, "link", "del", "eth0")
			time.Sleep(300 * time.Millisecond)
			s.AttachMAC(t, ns, s.NodePort(0), mac, s.V4[0], s.V6[0])
			// The daemon looks at the uplink once a second.
			time.Sleep(1500 * time.Millisecond)
			node.WaitReady(t, 5*time.Second)
			relays("after delete/recreate")
			if reopened := strings.Contains(node.Log(), "transport reopened on the uplinks"); reopened != bindsToLinkT(tc.transport) {
				t.Errorf("transport reopened: %v, want %v", reopened, bindsToLinkT(tc.transport))
			}
			if node.Exited() {
				t.Fatalf("go-pmtud exited:\n%s", node.Log())
			}
		})
	}
}

// bindsToLinkT: the transports whose AF_PACKET socket is bound to the ifindex.
func bindsToLinkT(transport string) bool { return transport == "l2" || transport == "broadcast" }
