package firewall

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
)

func TestTunnelRuleExprs(t *testing.T) {
	// udp dport 30042 fib daddr type local ip6 daddr != @tunnel_addrs6 drop
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10}}, // NFPROTO_IPV6
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}}, // IPPROTO_UDP
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x75, 0x5a}}, // 30042
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(2)}, // RTN_LOCAL
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Lookup{SourceRegister: 1, SetName: "tunnel_addrs6", Invert: true},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	if got := tunnelDropExprs(30042, true, true, tunnelAddrs6); !reflect.DeepEqual(got, want) {
		t.Errorf("got %s\nwant %s", dump(got), dump(want))
	}
	// ip saddr: offset 12, 4 bytes.
	got := tunnelDropExprs(30042, false, false, tunnelPeers4)
	if p := got[8].(*expr.Payload); p.Offset != 12 || p.Len != 4 {
		t.Errorf("ip saddr payload %+v", p)
	}
	_, _, rules := objects(Config{Group: 33})
	if len(rules) != 2 {
		t.Errorf("without a tunnel port: %d rules, want the 2 ICMP rules", len(rules))
	}
	_, _, rules = objects(Config{Group: 33, TunnelPort: 30042})
	if len(rules) != 6 {
		t.Errorf("with a tunnel port: %d rules, want 6", len(rules))
	}
}

func TestTunnelRateExprs(t *testing.T) {
	cfg := Config{Group: 33, TunnelPort: 30042, TunnelSourceRate: 200, TunnelSourceBurst: 400}
	// udp dport 30042 fib daddr type local update @tunnel_rate6 { ip6 saddr limit rate over 200/second burst 400 packets } counter drop
	got := tunnelRateExprs(cfg, true, tunnelRate6)
	want := append(tunnelDropExprs(30042, true, false, tunnelPeers6)[:9],
		&expr.Dynset{SrcRegKey: 1, SetName: "tunnel_rate6", Operation: 1, // NFT_DYNSET_OP_UPDATE
			Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 200, Unit: expr.LimitTimeSecond, Burst: 400, Over: true}}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s\nwant %s", dump(got), dump(want))
	}
	if p := got[8].(*expr.Payload); p.Offset != 8 || p.Len != 16 { // ip6 saddr
		t.Errorf("ip6 saddr payload %+v", p)
	}
	// The burst defaults to the rate.
	cfg.TunnelSourceBurst = 0
	if l := tunnelRateExprs(cfg, false, tunnelRate4)[9].(*expr.Dynset).Exprs[0].(*expr.Limit); l.Burst != 200 {
		t.Errorf("burst %d without TunnelSourceBurst, want the rate (200)", l.Burst)
	}
	table, _, rules := objects(cfg)
	if len(rules) != 8 {
		t.Errorf("with a tunnel rate: %d rules, want 8", len(rules))
	}
	var dynamic []string
	for _, s := range sets(cfg, table) {
		if s.Dynamic {
			dynamic = append(dynamic, s.Name)
		}
	}
	if !reflect.DeepEqual(dynamic, []string{"tunnel_rate4", "tunnel_rate6"}) {
		t.Errorf("dynamic sets %v, want the two rate sets", dynamic)
	}
}

// TestTunnelGolden pins the batches: Install with remembered peers and
// addresses, and a peer update (flush and add in one batch).
func TestTunnelGolden(t *testing.T) {
	peers := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2"), netip.MustParseAddr("::ffff:10.0.0.3"), {}}
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	for _, tt := range []struct {
		file string
		op   func(*Table) error
	}{
		{"install-tunnel.golden", func(tab *Table) error {
			tab.tunnelPeers, tab.tunnelAddrs = normAddrs(peers), normAddrs(addrs)
			return tab.Install()
		}},
		{"set-tunnel-peers.golden", func(tab *Table) error { return tab.SetTunnelPeers(peers) }},
		{"install-tunnel-rate.golden", func(tab *Table) error {
			tab.cfg.TunnelSourceRate, tab.cfg.TunnelSourceBurst = 200, 400
			return tab.Install()
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var msgs []netlink.Message
			tab, err := New(Config{Ifaces: []string{"eth0"}, Group: 33, TunnelPort: 30042}, record(&msgs))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.op(tab); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, m := range msgs {
				fmt.Fprintf(&got, "type=%#04x flags=%#04x %x\n", uint16(m.Header.Type), uint16(m.Header.Flags), m.Data)
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("netlink batch differs from %s:\n got:\n%s\nwant:\n%s", path, got.Bytes(), want)
			}
		})
	}
}

func TestSetTunnelPeersNeedsAPort(t *testing.T) {
	tab, _ := New(Config{Group: 33})
	if err := tab.SetTunnelPeers(nil); err == nil {
		t.Fatal("no error without a tunnel port")
	}
}
