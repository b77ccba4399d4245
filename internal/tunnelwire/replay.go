package tunnelwire

// WindowBits is how far behind the newest counter a datagram may arrive
// and still be accepted (once).
const WindowBits = 1024

// Window is one sender's anti-replay state (RFC 4303 §3.4.3: a sliding
// bitmap below the highest counter seen), extended with the sender's epoch
// so a restarted sender (new random epoch, counter from 0) is accepted. Its
// memory is fixed (about 150 bytes). The zero Window accepts anything once.
//
// Feed it only authenticated datagrams: it trusts what it is given.
type Window struct {
	valid  bool
	epoch  uint64
	top    uint64 // highest counter accepted in epoch
	newest int64  // newest timestamp accepted, any epoch
	bits   [WindowBits / 64]uint64
}

// Accept reports whether (epoch, counter) is new, and records it.
//
// A new epoch is taken only from a datagram newer (by timestamp) than every
// one accepted so far: a restarted sender's clock has moved on, while a
// datagram of an older epoch replayed within the timestamp window is older
// than those the current epoch already delivered. Reordering across a
// restart loses the late datagrams of the old epoch, which is harmless.
func (w *Window) Accept(epoch, counter uint64, ts int64) bool {
	if !w.valid || epoch != w.epoch {
		if w.valid && ts <= w.newest {
			return false
		}
		*w = Window{valid: true, epoch: epoch, top: counter, newest: ts}
		w.bits[0] = 1
		return true
	}
	if counter > w.top {
		w.shift(counter - w.top)
		w.top = counter
		w.bits[0] |= 1
	} else {
		d := w.top - counter
		if d >= WindowBits {
			return false
		}
		word, bit := d/64, uint64(1)<<(d%64)
		if w.bits[word]&bit != 0 {
			return false
		}
		w.bits[word] |= bit
	}
	w.newest = max(w.newest, ts)
	return true
}

// Newest is the newest timestamp accepted (Unix ms), for pruning: once it
// is older than the freshness window, forgetting the Window changes
// nothing, since every datagram it could refuse is stale anyway.
func (w *Window) Newest() int64 { return w.newest }

// shift moves every bit n places up (bit i describes counter top-i).
func (w *Window) shift(n uint64) {
	if n >= WindowBits {
		w.bits = [WindowBits / 64]uint64{}
		return
	}
	words, bits := int(n/64), n%64
	for i := len(w.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bits
			if bits != 0 && j > 0 {
				v |= w.bits[j-1] >> (64 - bits)
			}
		}
		w.bits[i] = v
	}
}
