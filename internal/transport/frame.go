package transport

import (
	"encoding/binary"
	"net/netip"

	"github.com/go-pmtud/go-pmtud/internal/checksum"
)

// Frame and header building. Everything here is pure (no syscalls) and
// allocation-free: the callers own the buffers and reuse them.

// EtherType values (IEEE 802.3) for the relayed IP packet.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
)

const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	icmpHeadLen   = 4 // type, code, checksum: the part of an ICMP message we rewrite
)

// broadcastMAC is the Ethernet broadcast address.
var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// etherTypeFor maps an address family (4 or 6) to its EtherType, or 0.
func etherTypeFor(family uint8) uint16 {
	switch family {
	case 4:
		return etherTypeIPv4
	case 6:
		return etherTypeIPv6
	}
	return 0
}

// putEthernet writes an Ethernet II header (IEEE 802.3 clause 3.2.6) into
// b[:14]: destination, source, EtherType.
func putEthernet(b []byte, dst, src [6]byte, etherType uint16) {
	_ = b[ethHeaderLen-1]
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// putIPv4Header writes a 20-byte IPv4 header (RFC 791) for a packet that
// carries payloadLen bytes of ICMP (protocol 1) from src to dst with the given
// TTL. The identification is left zero and DF unset: with IP_HDRINCL Linux
// fills a zero ID itself. An invalid src is written as 0.0.0.0, which Linux
// replaces with the route's preferred source; it then recomputes the header
// checksum, so the one written here only matters to other consumers.
func putIPv4Header(b []byte, src, dst netip.Addr, ttl uint8, payloadLen int) {
	_ = b[ipv4HeaderLen-1]
	b[0] = 0x45 // version 4, IHL 5
	b[1] = 0    // DSCP/ECN
	binary.BigEndian.PutUint16(b[2:4], uint16(ipv4HeaderLen+payloadLen))
	binary.BigEndian.PutUint32(b[4:8], 0) // ID, flags, fragment offset
	b[8] = ttl
	b[9] = 1 // ICMP
	b[10], b[11] = 0, 0
	var s4 [4]byte
	if src.IsValid() {
		s4 = src.Unmap().As4()
	}
	d4 := dst.Unmap().As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:12], checksum.Checksum(b[:ipv4HeaderLen], 0))
}

// icmp6BodySum is the partial one's-complement sum of an ICMPv6 message's
// bytes after the checksum field (msg[4:]). It does not depend on the
// addresses, so Send computes it once per message, not once per peer.
func icmp6BodySum(msg []byte) uint64 {
	if len(msg) <= icmpHeadLen {
		return 0
	}
	return checksum.Partial(msg[icmpHeadLen:], 0)
}

// putICMPv6Head writes the first 4 bytes of msg (type, code, checksum) into
// b, with the checksum recomputed for the pseudo-header (RFC 8200 section 8.1,
// RFC 4443 section 2.3) of a copy sent from src to dst. bodySum is
// icmp6BodySum(msg).
func putICMPv6Head(b []byte, msg []byte, src, dst netip.Addr, bodySum uint64) {
	_ = b[icmpHeadLen-1]
	b[0], b[1] = msg[0], msg[1]
	b[2], b[3] = 0, 0
	sum := checksum.Pseudo6(src, dst, uint32(len(msg)), 58) + bodySum
	binary.BigEndian.PutUint16(b[2:4], checksum.Checksum(b[:icmpHeadLen], sum))
}
