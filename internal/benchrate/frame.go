// Package benchrate measures go-pmtud's relay path end to end in network
// namespaces: a generator writes valid PTBs, each about a different flow, at
// fixed rates into one node's uplink; two peers capture the relayed copies
// with kernel timestamps; the daemon's CPU and memory come from /proc.
//
// The pure parts (frame building, flow keys, statistics) live apart from
// the sockets so they can be unit-tested and fuzzed.
package benchrate

import (
	"encoding/binary"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// Each generated PTB quotes a packet to a distinct client: the index's low
// 22 bits are the client's host bits in 100.64.0.0/10, its next 16 bits
// the quoted destination port. The top bits of the index (PhaseShift) name
// the benchmark phase, so copies of one phase are never counted in another.
const (
	clientBits = 22
	PhaseShift = 30
	maxIndex   = 1<<(clientBits+16) - 1
)

// Offsets in the IPv4 packet built by ptbtest (20-byte outer header, 8-byte
// ICMP header, 20-byte quoted header, quoted ports).
const (
	offICMP       = 20
	offInner      = offICMP + 8
	offInnerDst   = offInner + 16
	offInnerDport = offInner + 20 + 2
	ethLen        = 14
)

// Template builds the PTBs of one router about one VIP.
type Template struct {
	pkt []byte // IP packet with client 100.64.0.0 and port 0
}

// NewTemplate returns the template for router telling vip (both IPv4).
func NewTemplate(router, vip netip.Addr, mtu uint32) *Template {
	return &Template{pkt: ptbtest.Build(ptbtest.Spec{
		Router: router, VIP: vip, Client: netip.AddrFrom4([4]byte{100, 64, 0, 0}),
		MTU: mtu, SrcPort: 443,
	})}
}

// Len is the IP packet's length.
func (t *Template) Len() int { return len(t.pkt) }

// Put writes the IP packet for index idx into dst (at least Len bytes) and
// returns it. It does not allocate.
func (t *Template) Put(dst []byte, idx uint64) []byte {
	p := dst[:len(t.pkt)]
	copy(p, t.pkt)
	idx &= maxIndex
	host := uint32(idx) & (1<<clientBits - 1)
	binary.BigEndian.PutUint32(p[offInnerDst:], 100<<24|64<<16|host)
	binary.BigEndian.PutUint16(p[offInnerDport:], uint16(idx>>clientBits))
	inner := p[offInner : offInner+20]
	inner[10], inner[11] = 0, 0
	binary.BigEndian.PutUint16(inner[10:], ptbtest.Checksum(inner, 0))
	icmp := p[offICMP:]
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], ptbtest.Checksum(icmp, 0))
	return p
}

// Index recovers the generator's index from an IPv4 ICMP frag-needed
// packet quoting a client in 100.64.0.0/10; ok is false for anything else
// (ARP, IPv6, other ICMP, truncated or foreign packets).
func Index(pkt []byte) (idx uint64, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 1 {
		return 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+8+20 {
		return 0, false
	}
	icmp := pkt[ihl:]
	if icmp[0] != 3 || icmp[1] != 4 {
		return 0, false
	}
	q := icmp[8:]
	qihl := int(q[0]&0x0f) * 4
	if q[0]>>4 != 4 || qihl < 20 || len(q) < qihl+4 {
		return 0, false
	}
	dst := binary.BigEndian.Uint32(q[16:20])
	if dst>>clientBits != (100<<24|64<<16)>>clientBits {
		return 0, false
	}
	port := binary.BigEndian.Uint16(q[qihl+2:])
	return uint64(dst&(1<<clientBits-1)) | uint64(port)<<clientBits, true
}
