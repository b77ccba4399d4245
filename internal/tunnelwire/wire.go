// Package tunnelwire is the tunnel transport's wire format: the header
// that goes before the original IP packet in each UDP datagram, its
// HMAC-SHA256 authentication, the replay window, and the key file's
// syntax. Everything but the key-file watcher (keyfile.go) is pure; sealing
// and opening do not allocate.
//
// Version 2 layout (all integers big-endian):
//
//		 0      4   5   6      8        12          20      28        36     52
//		+------+---+---+------+--------+-----------+-------+---------+------+-----------
//		| PMTU | 2 |fam| zero | key id | timestamp | epoch | counter | MAC  | IP packet
//		+------+---+---+------+--------+-----------+-------+---------+------+-----------
//
//	  - fam: 4 or 6, the IP version of the packet (checked against it);
//	  - key id: the first 4 bytes of SHA-256 of the signing key, so the
//	    receiver picks the verifying key without trying each; 0 when unsigned
//	    (the lab-only insecure mode);
//	  - timestamp: the sender's clock, Unix milliseconds (signed);
//	  - epoch: random, chosen when the sender starts; counter: incremented
//	    per datagram. (epoch, counter) feed the receiver's replay window;
//	  - MAC: HMAC-SHA256 over bytes 0..35 and the packet, truncated to 16
//	    bytes (RFC 2104 §5; 128 bits, as IPsec's HMAC-SHA-256-128, RFC 4868).
package tunnelwire

import (
	"encoding/binary"
	"errors"
)

// Version is the only header version this code speaks. Version 1 (8 bytes,
// unauthenticated) is refused.
const Version = 2

// HeaderLen is the length of the header, MAC included.
const HeaderLen = 52

// MACLen is the length of the truncated MAC.
const MACLen = 16

// macOffset is where the MAC starts: the MAC covers everything before it.
const macOffset = HeaderLen - MACLen

// MinIPHeader is the shortest payload worth authenticating: an IPv4 header.
// The PTB parser does the real length checks.
const MinIPHeader = 20

var magic = [4]byte{'P', 'M', 'T', 'U'}

// Header is the decoded header.
type Header struct {
	Family    uint8   // 4 or 6
	KeyID     [4]byte // zero: unsigned
	Timestamp int64   // sender's clock, Unix milliseconds
	Epoch     uint64  // the sender's random start value
	Counter   uint64  // per datagram
	MAC       [MACLen]byte
}

// Header errors. Created once so the receive path does not allocate.
var (
	ErrShort    = errors.New("tunnel: datagram shorter than its header and an IP header")
	ErrMagic    = errors.New("tunnel: bad magic")
	ErrVersion  = errors.New("tunnel: unsupported version")
	ErrFamily   = errors.New("tunnel: family is not 4 or 6, or does not match the packet's IP version")
	ErrReserved = errors.New("tunnel: reserved bytes are not zero")
)

// Marshal writes h into b[:HeaderLen].
func (h *Header) Marshal(b []byte) {
	_ = b[HeaderLen-1]
	copy(b[0:4], magic[:])
	b[4] = Version
	b[5] = h.Family
	b[6], b[7] = 0, 0
	copy(b[8:12], h.KeyID[:])
	binary.BigEndian.PutUint64(b[12:20], uint64(h.Timestamp))
	binary.BigEndian.PutUint64(b[20:28], h.Epoch)
	binary.BigEndian.PutUint64(b[28:36], h.Counter)
	copy(b[macOffset:HeaderLen], h.MAC[:])
}

// Parse decodes a datagram's header into h and returns the IP packet it
// carries (aliasing d). The packet's first nibble must agree with the
// family, so a mislabelled packet never reaches the parser as the wrong
// family. Parse checks the form only: Opener.Open authenticates.
func Parse(d []byte, h *Header) (pkt []byte, err error) {
	if len(d) < HeaderLen+MinIPHeader {
		return nil, ErrShort
	}
	if [4]byte(d[0:4]) != magic {
		return nil, ErrMagic
	}
	if d[4] != Version {
		return nil, ErrVersion
	}
	if d[6] != 0 || d[7] != 0 {
		return nil, ErrReserved
	}
	pkt = d[HeaderLen:]
	if f := d[5]; (f != 4 && f != 6) || pkt[0]>>4 != f {
		return nil, ErrFamily
	}
	h.Family = d[5]
	h.KeyID = [4]byte(d[8:12])
	h.Timestamp = int64(binary.BigEndian.Uint64(d[12:20]))
	h.Epoch = binary.BigEndian.Uint64(d[20:28])
	h.Counter = binary.BigEndian.Uint64(d[28:36])
	h.MAC = [MACLen]byte(d[macOffset:HeaderLen])
	return pkt, nil
}
