package transport

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

func TestPutTunnelHeaderGolden(t *testing.T) {
	var b [TunnelHeaderLen]byte
	for i := range b {
		b[i] = 0xee // the reserved bytes must be written, not left
	}
	PutTunnelHeader(b[:], 6)
	want := []byte{'P', 'M', 'T', 'U', 1, 6, 0, 0}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("header = % x, want % x", b, want)
	}
}

func tunnelDatagram(family uint8, pkt []byte) []byte {
	d := make([]byte, TunnelHeaderLen, TunnelHeaderLen+len(pkt))
	PutTunnelHeader(d, family)
	return append(d, pkt...)
}

func TestTunnelRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		family uint8
		router string
		vip    string
		client string
	}{
		{4, "10.77.0.254", "198.51.100.10", "203.0.113.5"},
		{6, "fd77::fe", "2001:db8:100::10", "2001:db8:2::5"},
	} {
		pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr(tc.router), VIP: netip.MustParseAddr(tc.vip),
			Client: netip.MustParseAddr(tc.client), MTU: 1400, SrcPort: 80, DstPort: 40000})
		fam, got, err := ParseTunnel(tunnelDatagram(tc.family, pkt))
		if err != nil || fam != tc.family || !bytes.Equal(got, pkt) {
			t.Errorf("v%d: ParseTunnel = %d, %d bytes, %v; want %d, the packet unchanged", tc.family, fam, len(got), err, tc.family)
		}
	}
}

func TestParseTunnelRejects(t *testing.T) {
	v4 := make([]byte, 28)
	v4[0] = 0x45
	v6 := make([]byte, 48)
	v6[0] = 0x60
	good := tunnelDatagram(4, v4)
	mut := func(i int, v byte) []byte {
		d := bytes.Clone(good)
		d[i] = v
		return d
	}
	for _, tc := range []struct {
		name string
		d    []byte
		want error
	}{
		{"empty", nil, ErrTunnelShort},
		{"header only", good[:TunnelHeaderLen], ErrTunnelShort},
		{"header and 19 bytes", good[:TunnelHeaderLen+19], ErrTunnelShort},
		{"magic", mut(0, 'X'), ErrTunnelMagic},
		{"magic last byte", mut(3, 'u'), ErrTunnelMagic},
		{"version 0", mut(4, 0), ErrTunnelVersion},
		{"version 2", mut(4, 2), ErrTunnelVersion},
		{"reserved 6", mut(6, 1), ErrTunnelReserved},
		{"reserved 7", mut(7, 0x80), ErrTunnelReserved},
		{"family 0", mut(5, 0), ErrTunnelFamily},
		{"family 5", mut(5, 5), ErrTunnelFamily},
		{"family 6, IPv4 packet", mut(5, 6), ErrTunnelFamily},
		{"family 4, IPv6 packet", tunnelDatagram(4, v6), ErrTunnelFamily},
	} {
		fam, pkt, err := ParseTunnel(tc.d)
		if !errors.Is(err, tc.want) || fam != 0 || pkt != nil {
			t.Errorf("%s: ParseTunnel = %d, %v, %v; want 0, nil, %v", tc.name, fam, pkt, err, tc.want)
		}
	}
	if _, _, err := ParseTunnel(tunnelDatagram(6, v6)); err != nil {
		t.Errorf("the unmutated IPv6 datagram: %v", err)
	}
	if _, _, err := ParseTunnel(good); err != nil {
		t.Errorf("the unmutated IPv4 datagram: %v", err)
	}
}

func TestTunnelFramingDoesNotAllocate(t *testing.T) {
	d := tunnelDatagram(4, make([]byte, 40))
	d[TunnelHeaderLen] = 0x45
	var h [TunnelHeaderLen]byte
	n := testing.AllocsPerRun(100, func() {
		PutTunnelHeader(h[:], 4)
		if _, _, err := ParseTunnel(d); err != nil {
			t.Fatal(err)
		}
		ParseTunnel(d[:3]) // the error path too
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// FuzzParseTunnel: ParseTunnel never panics, accepts only what
// PutTunnelHeader writes in front of a packet of the right version, and
// a header it accepts re-encodes to the same bytes (parse -> put -> parse).
func FuzzParseTunnel(f *testing.F) {
	v4 := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr("198.51.100.10"),
		Client: netip.MustParseAddr("203.0.113.5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
	v6 := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("fd77::fe"), VIP: netip.MustParseAddr("2001:db8:100::10"),
		Client: netip.MustParseAddr("2001:db8:2::5"), MTU: 1400, SrcPort: 80, DstPort: 40000})
	f.Add(tunnelDatagram(4, v4))
	f.Add(tunnelDatagram(6, v6))
	f.Add(tunnelDatagram(6, v4))
	f.Add([]byte("PMTU"))
	f.Add([]byte{'P', 'M', 'T', 'U', 1, 4, 0, 0})
	f.Add(append([]byte{'P', 'M', 'T', 'U', 1, 4, 0, 0}, make([]byte, 20)...)) // version nibble 0
	f.Add(append([]byte{'P', 'M', 'T', 'U', 2, 4, 0, 0}, v4...))
	f.Fuzz(func(t *testing.T, d []byte) {
		fam, pkt, err := ParseTunnel(d)
		if err != nil {
			if fam != 0 || pkt != nil {
				t.Fatalf("error %v with family %d and %d bytes", err, fam, len(pkt))
			}
			return
		}
		if fam != 4 && fam != 6 {
			t.Fatalf("accepted family %d", fam)
		}
		if len(pkt) != len(d)-TunnelHeaderLen || len(pkt) < minIPHeader || pkt[0]>>4 != fam {
			t.Fatalf("accepted payload of %d bytes, version %d, family %d", len(pkt), pkt[0]>>4, fam)
		}
		var h [TunnelHeaderLen]byte
		PutTunnelHeader(h[:], fam)
		if !bytes.Equal(h[:], d[:TunnelHeaderLen]) {
			t.Fatalf("accepted header % x re-encodes as % x", d[:TunnelHeaderLen], h)
		}
		fam2, pkt2, err := ParseTunnel(append(h[:], pkt...))
		if err != nil || fam2 != fam || !bytes.Equal(pkt2, pkt) {
			t.Fatalf("re-encoded datagram: %d, %v", fam2, err)
		}
	})
}
