package inject

import (
	"errors"
	"net/netip"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/tunnelwire"
)

// KeySource gives the current keyring (tunnelwire.KeyFile does).
type KeySource interface {
	Keyring() *tunnelwire.Keyring
}

// Default receive limits: a peer relays what its own policy let through
// (20/s per router, 200/s overall by default), so 100/s per peer with a
// burst of 200 is far above legitimate use and still bounds an abuser.
const (
	DefaultSkew        = 10 * time.Second
	DefaultPeerRate    = 100
	DefaultPeerBurst   = 200
	DefaultGlobalRate  = 1000
	DefaultGlobalBurst = 2000
	maxWindows         = 1 << 16 // replay windows kept at most (~10 MiB)
)

// GateConfig is what a Gate checks against. The funcs are called per
// datagram: they must be cheap and safe for concurrent use.
type GateConfig struct {
	// Peer returns the name of the peer owning an address. Required.
	Peer func(netip.Addr) (name string, ok bool)
	// Keys verifies datagrams. Nil only with Insecure.
	Keys KeySource
	// Insecure accepts unsigned datagrams when Keys is nil (labs only).
	Insecure bool
	// Skew is how far a datagram's timestamp may be from our clock.
	Skew time.Duration
	// Receive limits per peer and overall (zero: the defaults).
	PeerRate, GlobalRate   float64
	PeerBurst, GlobalBurst int
	// IsLocal reports an address of this node; RelayFor and IsVIP name
	// the VIPs only DNATed here; IsBroadcast a local subnet broadcast.
	IsLocal, IsVIP, IsBroadcast func(netip.Addr) bool
	RelayFor                    []netip.Prefix
	// Limits are the PTB parser's limits.
	Limits ptb.Limits
}

// Gate decides, datagram by datagram, what may be injected. Not safe for
// concurrent use: the receiver's one goroutine owns it.
type Gate struct {
	cfg     GateConfig
	open    *tunnelwire.Opener
	hdr     tunnelwire.Header
	windows map[string]*tunnelwire.Window
	limits  *policy.Buckets[string]
}

// NewGate checks cfg and returns a Gate.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.Peer == nil {
		return nil, errors.New("inject: no peer lookup")
	}
	if cfg.Keys == nil && !cfg.Insecure {
		return nil, errors.New("inject: no tunnel key: give --tunnel-key-file (or, in a lab only, --tunnel-insecure)")
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate, cfg.PeerBurst = DefaultPeerRate, DefaultPeerBurst
	}
	if cfg.GlobalRate == 0 {
		cfg.GlobalRate, cfg.GlobalBurst = DefaultGlobalRate, DefaultGlobalBurst
	}
	lim, err := policy.NewBuckets[string](cfg.PeerRate, cfg.PeerBurst, cfg.GlobalRate, cfg.GlobalBurst, maxWindows)
	if err != nil {
		return nil, err
	}
	return &Gate{cfg: cfg, windows: map[string]*tunnelwire.Window{}, limits: lim}, nil
}

// Classify decides whether datagram d from address from, received at now,
// may be injected. It returns the packet to inject (m.Packet: trimmed to
// its stated IP length, aliasing d) and Injected, or why not, with the
// parser's or policy's reason where there is one. m is scratch owned by the
// caller. It does not allocate, except for a peer's first datagram (its
// replay window) and a new keyring.
//
// Cheap checks first; only authenticated datagrams touch state (replay
// windows, rate limits), so forged ones cannot use up a peer's budget.
func (g *Gate) Classify(d []byte, from netip.Addr, now time.Time, m *ptb.Message) ([]byte, Result, drop.Reason) {
	name, ok := g.cfg.Peer(from.Unmap().WithZone(""))
	if !ok {
		return nil, NotPeer, drop.None
	}
	pkt, res := g.authenticate(d)
	if res != Injected {
		return nil, res, drop.None
	}
	if !tunnelwire.Fresh(g.hdr.Timestamp, now.UnixMilli(), g.cfg.Skew.Milliseconds()) {
		return nil, Stale, drop.None
	}
	if w := g.window(name, now); w == nil || !w.Accept(g.hdr.Epoch, g.hdr.Counter, g.hdr.Timestamp) {
		return nil, Replayed, drop.None
	}
	switch g.limits.Take(name, now) {
	case policy.LimitedKey:
		return nil, RateLimitedPeer, drop.None
	case policy.LimitedOverall:
		return nil, RateLimitedGlobal, drop.None
	}
	if res, reason := g.checkPTB(pkt, m); res != Injected {
		return nil, res, reason
	}
	return m.Packet, Injected, drop.None
}

// authenticate checks the header and the MAC, with the current keys.
func (g *Gate) authenticate(d []byte) ([]byte, Result) {
	var ring *tunnelwire.Keyring
	if g.cfg.Keys != nil {
		ring = g.cfg.Keys.Keyring()
	}
	if ring == nil { // insecure: the form only
		pkt, err := tunnelwire.Parse(d, &g.hdr)
		if err != nil {
			return nil, BadHeader
		}
		return pkt, Injected
	}
	if g.open == nil || g.open.Keyring() != ring {
		g.open = tunnelwire.NewOpener(ring)
	}
	pkt, err := g.open.Open(d, &g.hdr)
	switch {
	case err == nil:
		return pkt, Injected
	case errors.Is(err, tunnelwire.ErrUnknownKey):
		return nil, UnknownKey
	case errors.Is(err, tunnelwire.ErrBadMAC):
		return nil, BadMAC
	}
	return nil, BadHeader
}

// window returns name's replay window, creating it; past maxWindows,
// windows whose newest datagram is older than the freshness window are
// forgotten first (forgetting them changes nothing: anything they would
// refuse is stale). Nil if the table is still full: refuse (fail closed).
func (g *Gate) window(name string, now time.Time) *tunnelwire.Window {
	if w, ok := g.windows[name]; ok {
		return w
	}
	if len(g.windows) >= maxWindows {
		old := now.UnixMilli() - 2*g.cfg.Skew.Milliseconds()
		for k, w := range g.windows {
			if w.Newest() < old {
				delete(g.windows, k)
			}
		}
	}
	if len(g.windows) >= maxWindows {
		return nil
	}
	w := &tunnelwire.Window{}
	g.windows[name] = w
	return w
}
