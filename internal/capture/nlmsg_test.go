package capture

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// realPacket builds the datagram in the kernel's layout (attribute order of
// __build_packet_message) so the test does not depend on a capture file.
func realPacket(seq uint32, payload, hw []byte) []byte {
	var b []byte
	attr := func(typ uint16, v []byte) {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	b = append(b, make([]byte, 16)...)
	b = append(b, syscall.AF_INET, 0, 0, 33)
	attr(nfulaPacketHdr, []byte{0x08, 0x00, 0, 0})      // hw_protocol, hook
	attr(10, []byte("pmtud\x00"))                       // NFULA_PREFIX
	attr(nfulaIfIndexIn|0x4000, be32(7))                // with NLA_F_NET_BYTEORDER
	attr(8, []byte{0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0}) // NFULA_HWADDR
	attr(nfulaHwType, []byte{0, 1})
	attr(17, []byte{0, 14}) // NFULA_HWLEN
	attr(nfulaHwHeader, hw)
	attr(nfulaSeq, be32(seq))
	attr(nfulaPayload, payload)
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nfulnlMsgPkt)
	return b
}

func TestParsePacket(t *testing.T) {
	payload, _ := hex.DecodeString("4500003800000000400100000a4d00fec633640a0304")
	hw := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0}
	dgram := append(realPacket(41, payload, hw), realPacket(42, payload[:20], hw)...)
	r := nlReader{b: dgram}
	var p nflogPacket
	for i, want := range []uint32{41, 42} {
		typ, _, body, ok, err := r.next()
		if !ok || err != nil || typ != nfulnlMsgPkt {
			t.Fatalf("message %d: type %#x ok %v err %v", i, typ, ok, err)
		}
		if err := parsePacket(body, &p); err != nil {
			t.Fatal(err)
		}
		if !p.HasSeq || p.Seq != want || p.InDev != 7 || p.HwType != 1 || !bytes.Equal(p.HwHeader, hw) {
			t.Errorf("message %d: %+v", i, p)
		}
	}
	if !bytes.Equal(p.Payload, payload[:20]) {
		t.Errorf("payload %x", p.Payload)
	}
	if _, _, _, ok, err := r.next(); ok || err != nil {
		t.Errorf("after the last message: ok %v err %v", ok, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		r := nlReader{b: dgram}
		for {
			_, _, body, ok, _ := r.next()
			if !ok {
				return
			}
			parsePacket(body, &p)
		}
	}); n != 0 {
		t.Errorf("%v allocations per datagram", n)
	}
}

func TestParseMalformed(t *testing.T) {
	good := realPacket(1, []byte{0x45, 0, 0, 20}, nil)
	for name, b := range map[string][]byte{
		"length beyond datagram": func() []byte { c := bytes.Clone(good); binary.NativeEndian.PutUint32(c, 4096); return c }(),
		"length below header":    func() []byte { c := bytes.Clone(good); binary.NativeEndian.PutUint32(c, 8); return c }(),
	} {
		r := nlReader{b: b}
		if _, _, _, _, err := r.next(); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// An attribute longer than its message.
	c := bytes.Clone(good)
	binary.NativeEndian.PutUint16(c[20:], 0xfff0)
	r := nlReader{b: c}
	_, _, body, _, _ := r.next()
	var p nflogPacket
	if err := parsePacket(body, &p); !errors.Is(err, errMalformed) {
		t.Errorf("long attribute: err %v", err)
	}
	if err := parsePacket([]byte{2, 0}, &p); !errors.Is(err, errMalformed) {
		t.Errorf("short nfgenmsg: err %v", err)
	}
}

func TestNlError(t *testing.T) {
	if err := nlError(binary.NativeEndian.AppendUint32(nil, uint32(0))); err != nil {
		t.Errorf("ack: %v", err)
	}
	e := int32(-int32(syscall.EPERM))
	if err := nlError(binary.NativeEndian.AppendUint32(nil, uint32(e))); err != syscall.EPERM {
		t.Errorf("EPERM: %v", err)
	}
	if err := nlError(nil); !errors.Is(err, errMalformed) {
		t.Errorf("empty: %v", err)
	}
}

func TestConfigMsg(t *testing.T) {
	b := configMsg(nil, 7, 33, nla{nfulaCfgCmd, []byte{nfulnlCfgCmdBind}}, cfgMode(0xffff))
	// 16 header + 4 nfgenmsg + 8 (cmd, padded) + 12 (mode, padded)
	if len(b) != 40 || binary.NativeEndian.Uint32(b) != 40 || binary.NativeEndian.Uint16(b[4:]) != nfulnlMsgCfg ||
		binary.BigEndian.Uint16(b[18:]) != 33 || binary.NativeEndian.Uint16(b[20:]) != 5 || b[24] != nfulnlCfgCmdBind ||
		binary.NativeEndian.Uint16(b[28:]) != 10 || binary.BigEndian.Uint32(b[32:]) != 0xffff || b[36] != nfulnlCopyPacket {
		t.Errorf("config message % x", b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(realPacket(3, []byte{0x45, 0, 0, 20, 1, 2}, []byte{1, 2, 3}))
	f.Add(append(realPacket(1, nil, nil), 1, 2, 3))
	if d, err := os.ReadFile(filepath.Join("testdata", "nflog-ptb4.bin")); err == nil {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := nlReader{b: b}
		var p nflogPacket
		for range 1 << 16 {
			_, _, body, ok, err := r.next()
			if !ok || err != nil {
				return
			}
			if parsePacket(body, &p) == nil && p.Payload != nil && len(p.Payload) > len(b) {
				t.Fatal("payload outside the datagram")
			}
		}
		t.Fatal("reader never ended")
	})
}

// TestParseKernelBytes parses a datagram Linux 6.18 sent for one logged
// ICMPv4 frag-needed (stored by TestKernelDatagram).
func TestParseKernelBytes(t *testing.T) {
	d, err := os.ReadFile(filepath.Join("testdata", "nflog-ptb4.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ip := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("192.0.2.1"), VIP: netip.MustParseAddr("192.0.2.2"),
		Client: netip.MustParseAddr("198.51.100.7"), MTU: 1400, SrcPort: 80, DstPort: 40000})
	checkKernelDatagram(t, d, ip)
}

// checkKernelDatagram parses d, which must hold exactly one NFLOG packet
// message carrying ip, received on an Ethernet device with sequence number 0.
func checkKernelDatagram(t *testing.T, d, ip []byte) {
	t.Helper()
	r := nlReader{b: d}
	typ, _, body, ok, err := r.next()
	if !ok || err != nil || typ != nfulnlMsgPkt {
		t.Fatalf("type %#x ok %v err %v", typ, ok, err)
	}
	var p nflogPacket
	if err := parsePacket(body, &p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Payload, ip) || !p.HasSeq || p.Seq != 0 || p.InDev == 0 {
		t.Errorf("parsed %+v, want the sent packet, seq 0 and an input device", p)
	}
	if _, _, hasMAC := ethernetMACs(p.HwType, p.HwHeader); !hasMAC {
		t.Errorf("no Ethernet header: type %d, % x", p.HwType, p.HwHeader)
	}
	if _, _, _, more, err := r.next(); more || err != nil {
		t.Errorf("more after the message: %v %v", more, err)
	}
}

// TestDatagramDoesNotAllocate: from a received datagram to the handler,
// the listener allocates nothing.
func TestDatagramDoesNotAllocate(t *testing.T) {
	d := realPacket(0, []byte{0x45, 0, 0, 20, 1, 2, 3, 4}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0})
	calls := 0
	flushes := 0
	l := &Listener{handler: func(p *Packet) { calls++ }, flush: func() { flushes++ }}
	s := &session{}
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { l.datagram(s, d, now); l.endBatch() }); n != 0 {
		t.Errorf("%v allocations per datagram", n)
	}
	if calls == 0 || l.Stats().Received != uint64(calls) || flushes != calls {
		t.Errorf("handler called %d times, flush %d times, stats %+v", calls, flushes, l.Stats())
	}
}
