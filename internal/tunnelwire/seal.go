package tunnelwire

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
)

// Open errors.
var (
	ErrUnknownKey = errors.New("tunnel: signed with a key we do not have")
	ErrBadMAC     = errors.New("tunnel: MAC does not verify")
)

// mac is one key's HMAC state and a buffer for its sum. Not safe for
// concurrent use: each Sealer and Opener has its own.
type mac struct {
	id  [4]byte
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMAC(k Key) *mac { return &mac{id: k.ID, h: hmac.New(sha256.New, k.secret)} }

// compute returns the truncated MAC of hdr[:macOffset] and pkt. It does not
// allocate once the HMAC has been reset once (Go keeps its pad states).
func (m *mac) compute(hdr, pkt []byte) []byte {
	m.h.Reset()
	m.h.Write(hdr[:macOffset])
	m.h.Write(pkt)
	return m.h.Sum(m.sum[:0])[:MACLen]
}

// Sealer writes signed headers. A nil keyring makes unsigned headers (key
// id and MAC zero), which only an insecure receiver accepts. Not safe for
// concurrent use.
type Sealer struct {
	ring *Keyring
	m    *mac
}

// NewSealer returns a Sealer signing with ring's first key, or unsigned if
// ring is nil.
func NewSealer(ring *Keyring) *Sealer {
	s := &Sealer{ring: ring}
	if ring != nil {
		s.m = newMAC(ring.keys[0])
	}
	return s
}

// Keyring is the keyring the Sealer was made from (nil: unsigned).
func (s *Sealer) Keyring() *Keyring { return s.ring }

// Seal writes h's header for pkt into hdr[:HeaderLen], with the signing
// key's id and the MAC (h.KeyID and h.MAC are ignored). It does not
// allocate.
func (s *Sealer) Seal(hdr []byte, h *Header, pkt []byte) {
	h.KeyID, h.MAC = [4]byte{}, [MACLen]byte{}
	if s.m != nil {
		h.KeyID = s.m.id
	}
	h.Marshal(hdr)
	if s.m != nil {
		copy(hdr[macOffset:HeaderLen], s.m.compute(hdr, pkt))
	}
}

// Opener verifies datagrams against every key of a keyring. Not safe for
// concurrent use.
type Opener struct {
	ring *Keyring
	macs []*mac
}

// NewOpener returns an Opener for ring.
func NewOpener(ring *Keyring) *Opener {
	o := &Opener{ring: ring}
	for _, k := range ring.keys {
		o.macs = append(o.macs, newMAC(k))
	}
	return o
}

// Keyring is the keyring the Opener was made from.
func (o *Opener) Keyring() *Keyring { return o.ring }

// Open parses d into h and authenticates it: the key named by h.KeyID must
// be one of ours and the MAC must verify (compared in constant time). It
// returns the IP packet (aliasing d). Freshness and replay are the
// caller's (Fresh, Window). It does not allocate.
func (o *Opener) Open(d []byte, h *Header) ([]byte, error) {
	pkt, err := Parse(d, h)
	if err != nil {
		return nil, err
	}
	for _, m := range o.macs {
		if m.id == h.KeyID {
			if !hmac.Equal(m.compute(d, pkt), h.MAC[:]) {
				return nil, ErrBadMAC
			}
			return pkt, nil
		}
	}
	return nil, ErrUnknownKey
}

// Fresh reports whether a timestamp ts (Unix ms) is within skew (ms) of
// now (Unix ms), either way.
func Fresh(ts, now, skew int64) bool {
	d := now - ts
	return d <= skew && d >= -skew
}
