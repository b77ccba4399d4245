package transport

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
)

func TestEncodeNeighManagedDecodes(t *testing.T) {
	for _, a := range []netip.Addr{addr("10.77.0.2"), addr("fd77::2")} {
		b, err := encodeNeighManaged(a, 7)
		if err != nil {
			t.Fatal(err)
		}
		wantFam := byte(afInet)
		if a.Is6() {
			wantFam = afInet6
		}
		if b[0] != wantFam || binary.NativeEndian.Uint32(b[4:]) != 7 || b[10] != 0 {
			t.Errorf("%s: ndmsg % x", a, b[:ndmsgLen])
		}
		k, ok, err := decodeNeigh(b)
		if err != nil || !ok {
			t.Fatalf("%s: decode: ok %v err %v", a, ok, err)
		}
		if k.addr != a || k.ifindex != 7 || !k.managed || !k.ours() || k.hasMAC || k.usable() {
			t.Errorf("%s: decoded %+v", a, k)
		}
	}
}

func TestEncodeNeighUseAndDel(t *testing.T) {
	a := addr("10.77.0.9")
	use, err := encodeNeighUse(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	if use[10] != ntfUse {
		t.Errorf("NTF_USE flag missing: % x", use[:ndmsgLen])
	}
	if k, ok, _ := decodeNeigh(use); !ok || k.ours() || k.managed || k.addr != a {
		t.Errorf("use decodes as %+v", k)
	}
	del, err := encodeNeighDel(a, 3)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok, _ := decodeNeigh(del); !ok || k.addr != a || k.ifindex != 3 {
		t.Errorf("del decodes as %+v", k)
	}
}

// kernelEntry is an RTM_NEWNEIGH body as the kernel dumps it.
func kernelEntry(a netip.Addr, ifindex int, state uint16, mac []byte, proto uint8) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ndaDst, a.AsSlice())
	if mac != nil {
		ae.Bytes(ndaLLAddr, mac)
	}
	ae.Bytes(3, make([]byte, 16)) // NDA_CACHEINFO, ignored
	if proto != 0 {
		ae.Uint8(ndaProtocol, proto)
	}
	attrs, _ := ae.Encode()
	return append(ndmsg(a, ifindex, state, 0), attrs...)
}

func TestDecodeNeigh(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	for _, tc := range []struct {
		name         string
		b            []byte
		ok, usable   bool
		ours, hasMAC bool
	}{
		{"reachable", kernelEntry(addr("10.0.0.2"), 2, 0x02, mac, 0), true, true, false, true},
		{"stale, ours", kernelEntry(addr("fd00::2"), 2, 0x04, mac, NeighProtocol), true, true, true, true},
		{"failed keeps no MAC", kernelEntry(addr("10.0.0.3"), 2, nudFailed, nil, NeighProtocol), true, false, true, false},
		{"incomplete with a MAC is not usable", kernelEntry(addr("10.0.0.4"), 2, nudIncomplete, mac, 0), true, false, false, true},
		{"other protocol", kernelEntry(addr("10.0.0.5"), 2, 0x80, mac, 4), true, true, false, true},
		{"bad MAC length", kernelEntry(addr("10.0.0.6"), 2, 0x02, mac[:4], 0), true, false, false, false},
		{"no destination (FDB)", ndmsg(addr("10.0.0.7"), 2, 0x02, 0), false, false, false, false},
	} {
		k, ok, err := decodeNeigh(tc.b)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if ok != tc.ok || k.usable() != tc.usable || k.ours() != tc.ours || k.hasMAC != tc.hasMAC {
			t.Errorf("%s: ok %v %+v", tc.name, ok, k)
		}
	}
	if _, _, err := decodeNeigh(make([]byte, ndmsgLen-1)); err == nil {
		t.Error("short ndmsg accepted")
	}
	bad := append(ndmsg(addr("10.0.0.8"), 2, 2, 0), 8, 0, 1, 0) // attribute longer than the message
	if _, ok, err := decodeNeigh(bad); err == nil && ok {
		t.Error("truncated attribute accepted")
	}
}

// FuzzDecodeNeigh: decoding whatever the kernel (or a fuzzer) sends never
// panics, and an accepted address is valid and unmapped.
func FuzzDecodeNeigh(f *testing.F) {
	f.Add(kernelEntry(addr("10.0.0.2"), 2, 0x02, []byte{2, 0, 0, 0, 0, 1}, NeighProtocol))
	f.Add(kernelEntry(addr("fd00::2"), 2, 0x20, nil, 0))
	f.Add(ndmsg(addr("10.0.0.7"), 2, 0x02, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, ok, err := decodeNeigh(b)
		if err != nil || !ok {
			return
		}
		if !k.addr.IsValid() || k.addr.Is4In6() {
			t.Fatalf("address %v", k.addr)
		}
		if k.usable() && !k.hasMAC {
			t.Fatal("usable without a MAC")
		}
	})
}

func TestEncodeNeighDump(t *testing.T) {
	b, err := encodeNeighDump(42)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || binary.NativeEndian.Uint32(b[4:]) != 0 {
		t.Errorf("ndmsg % x, want AF_UNSPEC and no ifindex (the attribute filters)", b[:ndmsgLen])
	}
	ad, err := netlink.NewAttributeDecoder(b[ndmsgLen:])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for ad.Next() {
		found = found || (ad.Type() == ndaIfindex && ad.Uint32() == 42)
	}
	if !found {
		t.Error("no NDA_IFINDEX 42")
	}
}
