package firewall

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ifname is the zero-padded IFNAMSIZ form nft compares for `iifname "eth0"`.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func TestRuleExprs(t *testing.T) {
	logGroup := &expr.Log{Key: 1<<1 | 1<<4, Group: 33, QThreshold: 1} // NFTA_LOG_GROUP (1), NFTA_LOG_QTHRESHOLD (4)
	// icmp type destination-unreachable icmp code frag-needed
	icmp4 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}}, // NFPROTO_IPV4
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}}, // IPPROTO_ICMP
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{4}},
	}
	// icmpv6 type packet-too-big icmpv6 code 0
	icmp6 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10}}, // NFPROTO_IPV6
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{58}}, // IPPROTO_ICMPV6
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
	}
	iif := func(data []byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
		}
	}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	limit := &expr.Limit{Type: expr.LimitTypePkts, Rate: 100, Unit: expr.LimitTimeSecond, Burst: 100}
	limitBurst := &expr.Limit{Type: expr.LimitTypePkts, Rate: 100, Unit: expr.LimitTimeSecond, Burst: 7}

	tests := []struct {
		name         string
		cfg          Config
		want4, want6 []expr.Any
	}{
		{
			// iifname "eth0" icmp ... log group 33 queue-threshold 1
			name:  "uplink",
			cfg:   Config{Ifaces: []string{"eth0"}, Group: 33},
			want4: cat(iif(ifname("eth0")), icmp4, []expr.Any{logGroup}),
			want6: cat(iif(ifname("eth0")), icmp6, []expr.Any{logGroup}),
		},
		{
			// icmp ... log group 33 queue-threshold 1
			name:  "any interface",
			cfg:   Config{Group: 33},
			want4: cat(icmp4, []expr.Any{logGroup}),
			want6: cat(icmp6, []expr.Any{logGroup}),
		},
		{
			// iifname "bond*" ...
			name:  "prefix",
			cfg:   Config{Ifaces: []string{"bond*"}, Group: 33},
			want4: cat(iif([]byte("bond")), icmp4, []expr.Any{logGroup}),
			want6: cat(iif([]byte("bond")), icmp6, []expr.Any{logGroup}),
		},
		{
			// ... limit rate 100/second burst 100 packets log group 33 queue-threshold 1
			name:  "rate limit",
			cfg:   Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 100},
			want4: cat(iif(ifname("eth0")), icmp4, []expr.Any{limit, logGroup}),
			want6: cat(iif(ifname("eth0")), icmp6, []expr.Any{limit, logGroup}),
		},
		{
			// ... limit rate 100/second burst 7 packets log group 33 queue-threshold 1
			name:  "rate limit with burst",
			cfg:   Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 100, Burst: 7},
			want4: cat(iif(ifname("eth0")), icmp4, []expr.Any{limitBurst, logGroup}),
			want6: cat(iif(ifname("eth0")), icmp6, []expr.Any{limitBurst, logGroup}),
		},
	}
	// update @sources4 { ip saddr limit rate 50/second burst 50 packets }
	src := func(off, n uint32, set string) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Dynset{SrcRegKey: 1, SetName: set, Operation: 1, // NFT_DYNSET_OP_UPDATE
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 50, Unit: expr.LimitTimeSecond, Burst: 50}}},
		}
	}
	tests = append(tests, struct {
		name         string
		cfg          Config
		want4, want6 []expr.Any
	}{
		// ... update @sources4 { ip saddr limit rate 50/second burst 50 packets } limit rate 100/second ...
		name:  "per-source limit",
		cfg:   Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 100, SourceRatePerSecond: 50},
		want4: cat(iif(ifname("eth0")), icmp4, src(12, 4, "sources4"), []expr.Any{limit, logGroup}),
		want6: cat(iif(ifname("eth0")), icmp6, src(8, 16, "sources6"), []expr.Any{limit, logGroup}),
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iface := ""
			if len(tt.cfg.Ifaces) > 0 {
				iface = tt.cfg.Ifaces[0]
			}
			if got := rule4Exprs(tt.cfg, iface); !reflect.DeepEqual(got, tt.want4) {
				t.Errorf("rule4Exprs:\n got %s\nwant %s", dump(got), dump(tt.want4))
			}
			if got := rule6Exprs(tt.cfg, iface); !reflect.DeepEqual(got, tt.want6) {
				t.Errorf("rule6Exprs:\n got %s\nwant %s", dump(got), dump(tt.want6))
			}
		})
	}
}

func dump(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%T%+v ", e, e)
	}
	return b.String()
}

// TestRulesPerUplink: two uplinks get a pair of rules each, in order.
func TestRulesPerUplink(t *testing.T) {
	_, _, rules := objects(Config{Ifaces: []string{"eth0", "eth1"}, Group: 33})
	if len(rules) != 4 {
		t.Fatalf("%d rules, want 4", len(rules))
	}
	for i, iface := range []string{"eth0", "eth0", "eth1", "eth1"} {
		want := ifaceExprs(iface)
		if !reflect.DeepEqual(rules[i].Exprs[:2], want) {
			t.Errorf("rule %d matches %s, want iifname %q", i, dump(rules[i].Exprs[:2]), iface)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, iface := range []string{"a-very-long-name0", "*", ""} {
		if _, err := New(Config{Ifaces: []string{iface}, Group: 1}); err == nil {
			t.Errorf("New(Iface %q) = nil error, want one", iface)
		}
	}
	if _, err := New(Config{Ifaces: []string{"a-long-name-015"}, Group: 1}); err != nil {
		t.Errorf("New(15-byte name): %v", err)
	}
}

// record returns options that capture the netlink messages a Table sends
// instead of talking to a kernel.
func record(msgs *[]netlink.Message) nftables.ConnOption {
	return nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		*msgs = append(*msgs, req...)
		return req, nil // echoing the request is taken as an ack
	})
}

// TestInstallGolden pins the exact netlink batch Install and Remove send:
// one BATCH_BEGIN ... BATCH_END, so the kernel applies it atomically.
// Run with -update after an intended change and review the diff.
func TestInstallGolden(t *testing.T) {
	for _, tt := range []struct {
		file string
		cfg  Config
		op   func(*Table) error
	}{
		{"install.golden", Config{Ifaces: []string{"eth0"}, Group: 33}, (*Table).Install},
		{"install-limit.golden", Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 1000, Burst: 2000}, (*Table).Install},
		{"install-source-limit.golden", Config{Ifaces: []string{"eth0"}, Group: 33, RatePerSecond: 2000, SourceRatePerSecond: 500}, (*Table).Install},
		{"remove.golden", Config{Ifaces: []string{"eth0"}, Group: 33}, (*Table).Remove},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var msgs []netlink.Message
			tab, err := New(tt.cfg, record(&msgs))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.op(tab); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, m := range msgs {
				// Sequence and PID are assigned by the connection; leave them out.
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
