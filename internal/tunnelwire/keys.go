package tunnelwire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinKeyLen is the shortest key accepted, in bytes (128 bits).
const MinKeyLen = 16

// maxKeyLen bounds a key (HMAC hashes longer keys down to 32 bytes anyway).
const maxKeyLen = 64

// maxKeys bounds a key file: rotation needs two or three.
const maxKeys = 16

// Key is one shared secret and its id.
type Key struct {
	ID     [4]byte
	secret []byte
}

// NewKey returns the key for secret (copied), or an error if its length is
// outside MinKeyLen..64 bytes.
func NewKey(secret []byte) (Key, error) {
	if len(secret) < MinKeyLen || len(secret) > maxKeyLen {
		return Key{}, fmt.Errorf("key of %d bytes: want %d to %d", len(secret), MinKeyLen, maxKeyLen)
	}
	sum := sha256.Sum256(secret)
	return Key{ID: [4]byte(sum[:4]), secret: bytes.Clone(secret)}, nil
}

// Keyring is an immutable list of keys: the first signs, all verify.
type Keyring struct {
	keys []Key
}

// NewKeyring returns a keyring of keys (the first signs). Two keys with one
// id are refused: the receiver could not tell which to use.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	for i := range keys {
		for j := range i {
			if keys[i].ID == keys[j].ID {
				return nil, fmt.Errorf("keys %d and %d have the same id %x (the same key twice?)", j+1, i+1, keys[i].ID)
			}
		}
	}
	return &Keyring{keys: append([]Key(nil), keys...)}, nil
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.keys) }

// SignerID is the id of the signing key, for logs.
func (k *Keyring) SignerID() [4]byte { return k.keys[0].ID }

// IDs lists the key ids, signer first, as hex, for logs.
func (k *Keyring) IDs() []string {
	out := make([]string, len(k.keys))
	for i, key := range k.keys {
		out[i] = hex.EncodeToString(key.ID[:])
	}
	return out
}

// ParseKeyFile parses a key file: one hex key per line (at least
// MinKeyLen bytes), blank lines and lines starting with # ignored,
// surrounding space trimmed. The first key signs; every key verifies.
// Errors name the line but never echo a key.
func ParseKeyFile(b []byte) (*Keyring, error) {
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		secret, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: not a hex key", line)
		}
		key, err := NewKey(secret)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(keys) == maxKeys {
			return nil, fmt.Errorf("line %d: more than %d keys", line, maxKeys)
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in the file")
	}
	return NewKeyring(keys...)
}
