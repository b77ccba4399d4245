package status

import (
	"net/netip"
	"sync"
	"time"
)

// Relay is one relayed message, as `go-pmtud status` lists it. It is a
// fixed-size value: recording one copies it into the ring, nothing is
// allocated on the relay path.
type Relay struct {
	At     time.Time  `json:"at"`
	Family uint8      `json:"family"`
	Router netip.Addr `json:"router"` // who sent the PTB
	Dst    netip.Addr `json:"dst"`    // its outer destination (the VIP or node address)
	Client netip.Addr `json:"client"` // the quoted packet's destination: the far end of the flow
	MTU    uint32     `json:"mtu"`
	Peers  int        `json:"peers"`  // peers of the family it was sent to
	Frames int        `json:"frames"` // frames the transport handed to the kernel
}

// RingSize is how many recent relays are kept.
const RingSize = 16

// Ring keeps the last RingSize relays. Add is safe from the relay path
// (one short critical section, no allocation); Last from any goroutine.
type Ring struct {
	mu  sync.Mutex
	buf [RingSize]Relay
	n   uint64 // relays ever added
}

// Add records r, overwriting the oldest.
func (g *Ring) Add(r Relay) {
	g.mu.Lock()
	g.buf[g.n%RingSize] = r
	g.n++
	g.mu.Unlock()
}

// Last returns the recorded relays, newest first.
func (g *Ring) Last() []Relay {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := min(g.n, RingSize)
	out := make([]Relay, 0, k)
	for i := uint64(1); i <= k; i++ {
		out = append(out, g.buf[(g.n-i)%RingSize])
	}
	return out
}
