package capture

import "testing"

func TestEthernetMACs(t *testing.T) {
	eth := []byte{
		0x02, 0, 0, 0, 0, 0x0b, // destination
		0x02, 0, 0, 0, 0, 0x0a, // source
		0x08, 0x00, // IPv4
	}
	tests := []struct {
		name     string
		hwType   uint16
		hdr      []byte
		src, dst [6]byte
		ok       bool
	}{
		{"ethernet", arphrdEther, eth, [6]byte{2, 0, 0, 0, 0, 0x0a}, [6]byte{2, 0, 0, 0, 0, 0x0b}, true},
		{"ethernet ipv6", arphrdEther, append(eth[:12:12], 0x86, 0xdd), [6]byte{2, 0, 0, 0, 0, 0x0a}, [6]byte{2, 0, 0, 0, 0, 0x0b}, true},
		{"short", arphrdEther, eth[:13], [6]byte{}, [6]byte{}, false},
		{"long", arphrdEther, append(append([]byte{}, eth...), 0), [6]byte{}, [6]byte{}, false},
		{"empty", arphrdEther, nil, [6]byte{}, [6]byte{}, false},
		{"not ethernet", 778 /* ARPHRD_IPGRE */, eth, [6]byte{}, [6]byte{}, false},
		{"no type", 0, eth, [6]byte{}, [6]byte{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst, ok := ethernetMACs(tt.hwType, tt.hdr)
			if src != tt.src || dst != tt.dst || ok != tt.ok {
				t.Errorf("ethernetMACs = %x, %x, %v; want %x, %x, %v", src, dst, ok, tt.src, tt.dst, tt.ok)
			}
		})
	}
}

func FuzzEthernetMACs(f *testing.F) {
	f.Add(uint16(arphrdEther), []byte("\x02\x00\x00\x00\x00\x0b\x02\x00\x00\x00\x00\x0a\x08\x00"))
	f.Add(uint16(arphrdEther), []byte{})
	f.Fuzz(func(t *testing.T, hwType uint16, hdr []byte) {
		src, dst, ok := ethernetMACs(hwType, hdr)
		if ok != (hwType == arphrdEther && len(hdr) == 14) {
			t.Fatalf("ok = %v for type %d len %d", ok, hwType, len(hdr))
		}
		if ok && (string(dst[:]) != string(hdr[:6]) || string(src[:]) != string(hdr[6:12])) {
			t.Fatal("MACs do not match the header")
		}
	})
}
