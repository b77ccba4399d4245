package transport

import "errors"

// Tunnel framing. The tunnel transport sends the original IP packet, byte
// for byte, in a UDP datagram after this 8-byte header:
//
//	0      4          5         6          8
//	+------+----------+---------+----------+---------------------------
//	| PMTU | version  | family  | reserved | the original IP packet ...
//	|      | (1)      | (4, 6)  | (zero)   |
//	+------+----------+---------+----------+---------------------------
//
// The header exists so that a stray datagram (a port scan, another
// protocol on the same port) is rejected with a few comparisons, before
// the PTB parser runs. Everything here is pure and allocation-free.

// DefaultTunnelPort is the UDP port peers listen on (--tunnel-port).
const DefaultTunnelPort = 4442

// TunnelHeaderLen is the length of the tunnel header.
const TunnelHeaderLen = 8

// TunnelVersion is the only header version this code speaks. A receiver
// rejects any other: the version is bumped when the layout changes.
const TunnelVersion = 1

var tunnelMagic = [4]byte{'P', 'M', 'T', 'U'}

// Header errors. Created once so the receive path does not allocate.
var (
	ErrTunnelShort    = errors.New("tunnel: datagram shorter than its header and an IP header")
	ErrTunnelMagic    = errors.New("tunnel: bad magic")
	ErrTunnelVersion  = errors.New("tunnel: unsupported version")
	ErrTunnelFamily   = errors.New("tunnel: family is not 4 or 6, or does not match the packet's IP version")
	ErrTunnelReserved = errors.New("tunnel: reserved bytes are not zero")
)

// minIPHeader is the shortest payload worth handing to the PTB parser: an
// IPv4 header. The parser does the real length checks.
const minIPHeader = 20

// PutTunnelHeader writes the header for an IP packet of family (4 or 6)
// into b[:TunnelHeaderLen].
func PutTunnelHeader(b []byte, family uint8) {
	_ = b[TunnelHeaderLen-1]
	copy(b[0:4], tunnelMagic[:])
	b[4] = TunnelVersion
	b[5] = family
	b[6], b[7] = 0, 0
}

// ParseTunnel checks a received datagram's header and returns the family
// and the IP packet it carries (aliasing d). The packet's first nibble must
// agree with the family, so a mislabelled packet never reaches the parser
// as the wrong family.
func ParseTunnel(d []byte) (family uint8, pkt []byte, err error) {
	if len(d) < TunnelHeaderLen+minIPHeader {
		return 0, nil, ErrTunnelShort
	}
	if [4]byte(d[0:4]) != tunnelMagic {
		return 0, nil, ErrTunnelMagic
	}
	if d[4] != TunnelVersion {
		return 0, nil, ErrTunnelVersion
	}
	if d[6] != 0 || d[7] != 0 {
		return 0, nil, ErrTunnelReserved
	}
	family = d[5]
	pkt = d[TunnelHeaderLen:]
	if (family != 4 && family != 6) || pkt[0]>>4 != family {
		return 0, nil, ErrTunnelFamily
	}
	return family, pkt, nil
}
