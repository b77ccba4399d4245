package transport

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/checksum"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

func TestPutEthernet(t *testing.T) {
	b := make([]byte, ethHeaderLen)
	putEthernet(b, [6]byte{0x02, 0, 0, 0, 0, 0x02}, [6]byte{0x02, 0, 0, 0, 0, 0x01}, etherTypeIPv6)
	want := "020000000002" + "020000000001" + "86dd"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	putEthernet(b, broadcastMAC, [6]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, etherTypeIPv4)
	want = "ffffffffffff" + "aabbccddeeff" + "0800"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestEtherTypeFor(t *testing.T) {
	for f, want := range map[uint8]uint16{4: 0x0800, 6: 0x86dd, 0: 0, 5: 0} {
		if got := etherTypeFor(f); got != want {
			t.Errorf("etherTypeFor(%d) = %#x, want %#x", f, got, want)
		}
	}
}

func TestPutIPv4Header(t *testing.T) {
	b := make([]byte, ipv4HeaderLen)
	putIPv4Header(b, netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("10.77.0.2"), 7, 56)
	// 45 00 | len 76 | id 0 | flags 0 | ttl 7 | proto 1 | checksum | src | dst
	// Checksum by hand: 4500+004c+0701+0a4d+0001+0a4d+0002 = 0x60ea -> ~ = 0x9f15.
	want := "4500004c00000000" + "07019f15" + "0a4d0001" + "0a4d0002"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if c := checksum.Checksum(b, 0); c != 0 {
		t.Fatalf("header checksum does not verify: %#x", c)
	}
	if ptbtest.Checksum(b, 0) != 0 {
		t.Fatal("header checksum does not verify with ptbtest.Checksum")
	}

	// No source: zeros, for the kernel to fill in.
	putIPv4Header(b, netip.Addr{}, netip.MustParseAddr("::ffff:192.0.2.9"), 255, 8)
	if !bytes.Equal(b[12:16], []byte{0, 0, 0, 0}) || !bytes.Equal(b[16:20], []byte{192, 0, 2, 9}) || b[8] != 255 {
		t.Fatalf("got %x", b)
	}
	if checksum.Checksum(b, 0) != 0 {
		t.Fatal("checksum does not verify")
	}
}

// The ICMPv4 message travels unchanged in the routed transport, so its
// checksum, computed by the router, must still verify without any address.
func TestICMPv4ChecksumIgnoresAddresses(t *testing.T) {
	pkt := ptbtest.Build(ptbtest.Spec{
		Router: netip.MustParseAddr("192.0.2.1"), VIP: netip.MustParseAddr("10.99.0.1"),
		Client: netip.MustParseAddr("198.51.100.7"), MTU: 1400, SrcPort: 443, DstPort: 50000,
	})
	if ptbtest.Checksum(pkt[20:], 0) != 0 {
		t.Fatal("ICMPv4 checksum does not verify on its own")
	}
}

func TestPutICMPv6Head(t *testing.T) {
	router := netip.MustParseAddr("2001:db8::1")
	vip := netip.MustParseAddr("fd99::1")
	pkt := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, Client: netip.MustParseAddr("2001:db8:1::7"), MTU: 1400, SrcPort: 80, DstPort: 4000})
	msg := pkt[40:]
	src, dst := netip.MustParseAddr("fd77::1"), netip.MustParseAddr("fd77::2")

	for _, n := range []int{len(msg), len(msg) - 1, 8, 9} { // odd lengths too
		m := msg[:n]
		head := make([]byte, icmpHeadLen)
		putICMPv6Head(head, m, src, dst, icmp6BodySum(m))

		whole := append(append([]byte(nil), head...), m[icmpHeadLen:]...)
		if head[0] != 2 || head[1] != 0 {
			t.Fatalf("len %d: type/code %d/%d", n, head[0], head[1])
		}
		if c := ptbtest.ICMPv6Checksum(src, dst, whole); c != 0 {
			t.Fatalf("len %d: checksum does not verify for the new pseudo-header: %#x", n, c)
		}
		zero := append([]byte(nil), whole...)
		zero[2], zero[3] = 0, 0
		if want := ptbtest.ICMPv6Checksum(src, dst, zero); head[2] != byte(want>>8) || head[3] != byte(want) {
			t.Fatalf("len %d: checksum %x, want %04x", n, head[2:4], want)
		}
		if n == len(msg) && bytes.Equal(head, msg[:icmpHeadLen]) {
			t.Fatal("checksum unchanged after re-addressing")
		}
	}
}

func TestBuildersDoNotAllocate(t *testing.T) {
	pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("2001:db8::1"), VIP: netip.MustParseAddr("fd99::1"), Client: netip.MustParseAddr("2001:db8:1::7"), MTU: 1400})
	msg := pkt[40:]
	src, dst := netip.MustParseAddr("fd77::1"), netip.MustParseAddr("fd77::2")
	s4, d4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	eth := make([]byte, ethHeaderLen)
	ip := make([]byte, ipv4HeaderLen)
	head := make([]byte, icmpHeadLen)
	allocs := testing.AllocsPerRun(100, func() {
		putEthernet(eth, broadcastMAC, broadcastMAC, etherTypeIPv4)
		putIPv4Header(ip, s4, d4, 1, 100)
		putICMPv6Head(head, msg, src, dst, icmp6BodySum(msg))
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}
