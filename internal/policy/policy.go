// Package policy decides, for each well-formed PTB message (ICMPv4
// "fragmentation needed", RFC 1191; ICMPv6 "packet too big", RFC 8201),
// whether go-pmtud relays it to its peers or drops it, and why.
//
// It is pure (no sockets, no syscalls, no clocks: the caller passes the
// time) and allocation-free on the hot path. The checks run in this order,
// and the first that fails names the drop.Reason:
//
//  1. Loop guard, by the sender, whatever firewall rule the operator wrote:
//     it arrived on our tunnel device (FromPeer: a peer's injected copy);
//     outer source is ours (FromSelf) or a peer's (FromPeer); the frame
//     came from a peer MAC (FromPeer) or our own MAC (FromSelf); the frame
//     was sent to an L2 broadcast or multicast address (L2Broadcast).
//  2. Outer source (the router) in Config.IgnoreNetworks (IgnoredNetwork).
//  3. Quoted source differs from the outer destination (ForeignInner).
//  4. Quoted source outside Config.RelayFor (NotRelayFor); quoted source
//     port not in Config.Ports (PortNotListed).
//  5. No peer of the message's family (NoPeers).
//  6. Same router, quoted flow and MTU relayed within Config.DedupWindow
//     (Duplicate).
//  7. Rate limits: per flow, per source, global (RateLimitedFlow,
//     RateLimitedSource, RateLimitedGlobal), then the node's frame budget:
//     the message's whole fan-out must fit (RateLimitedFrames), so the
//     frames one node emits are bounded whatever the peer count.
//
// State (duplicate entries, rate-limit tokens) changes only when a message
// is relayed: a dropped message costs no tokens and a duplicate does not
// extend the window. See docs/policy.md for the defaults and their reasons.
package policy

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
)

// Config is the policy's configuration. Start from DefaultConfig.
type Config struct {
	IgnoreNetworks []netip.Prefix // router (outer source) in these -> IgnoredNetwork
	RelayFor       []netip.Prefix // if non-empty, quoted inner source must be inside -> else NotRelayFor
	Ports          []uint16       // if non-empty, quoted inner source port must be listed -> else PortNotListed
	DedupWindow    time.Duration  // same router + inner flow + MTU within this window -> Duplicate; 0 disables

	// Per key (router, inner destination address, inner destination port,
	// protocol): messages per second and burst.
	FlowRate  float64
	FlowBurst int
	// Per router address: generous, stops one router hogging the global cap.
	SourceRate  float64
	SourceBurst int
	// Overall messages per second relayed: bounds amplification, since
	// frames sent = messages relayed x peers.
	GlobalRate  float64
	GlobalBurst int
	// Overall frames per second sent, counted per peer a message goes to:
	// bounds amplification in frames, whatever the peer count. A message
	// whose fan-out does not fit is dropped whole (RateLimitedFrames); one
	// bigger than GlobalFrameBurst never fits.
	GlobalFrameRate  float64
	GlobalFrameBurst int

	// MaxTracked bounds the keys held by each table (duplicates, flows,
	// sources); the oldest are evicted first.
	MaxTracked int

	// Memory holds the tables' arrays; nil: the Go heap. An Engine with
	// other memory gives it back on Close.
	Memory Memory
}

// DefaultConfig returns the defaults documented in docs/policy.md.
func DefaultConfig() Config {
	return Config{
		DedupWindow: 100 * time.Millisecond,
		FlowRate:    10,
		FlowBurst:   10,
		SourceRate:  500,
		SourceBurst: 500,
		GlobalRate:  1000,
		GlobalBurst: 1000,
		// rate + burst = 50,000: no one-second window sees more frames
		// (docs/policy.md, "Frame budget"); the burst holds one full fan-out
		// of clusters up to 10,001 nodes.
		GlobalFrameRate:  40000,
		GlobalFrameBurst: 10000,
		MaxTracked:       65536,
	}
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	for _, p := range c.IgnoreNetworks {
		if !p.IsValid() {
			return fmt.Errorf("policy: invalid ignore network %v", p)
		}
	}
	for _, p := range c.RelayFor {
		if !p.IsValid() {
			return fmt.Errorf("policy: invalid relay-for network %v", p)
		}
	}
	if c.DedupWindow < 0 || int64(c.DedupWindow) > maxSpan {
		return fmt.Errorf("policy: duplicate window %v out of range [0, %v]", c.DedupWindow, time.Duration(maxSpan))
	}
	if err := checkLimit("flow", c.FlowRate, c.FlowBurst); err != nil {
		return err
	}
	if err := checkLimit("source", c.SourceRate, c.SourceBurst); err != nil {
		return err
	}
	if err := checkLimit("global", c.GlobalRate, c.GlobalBurst); err != nil {
		return err
	}
	if err := checkLimit("global frame", c.GlobalFrameRate, c.GlobalFrameBurst); err != nil {
		return err
	}
	if c.MaxTracked < 2 {
		return fmt.Errorf("policy: max tracked keys must be at least 2, got %d", c.MaxTracked)
	}
	return nil
}

// checkLimit refuses zero, negative and NaN rates (a limit cannot be
// switched off: set it high instead) and buckets whose refill time would
// not fit the engine's time arithmetic (about 36 years).
func checkLimit(name string, rate float64, burst int) error {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return fmt.Errorf("policy: %s rate must be positive and finite, got %v", name, rate)
	}
	if burst < 1 {
		return fmt.Errorf("policy: %s burst must be at least 1, got %d", name, burst)
	}
	if float64(burst)*math.Ceil(1e9/rate) > float64(maxSpan) {
		return fmt.Errorf("policy: %s burst %d at %v/s takes too long to refill", name, burst, rate)
	}
	return nil
}

// Engine holds the policy's state. It is not safe for concurrent use: the
// daemon calls Decide from its one packet-path goroutine.
type Engine struct {
	ignore, relayFor []netip.Prefix
	ports            *[1024]uint64 // bitmap of listed ports; nil: any port
	window           int64

	flowLim, srcLim, globLim, frameLim limit
	globalTAT, frameTAT                int64

	started bool
	base    time.Time

	// The tables are keyed by a seeded 64-bit hash of their keys, of
	// which a slot keeps 40 bits beside 24 of state: 8 bytes a slot
	// where the keys themselves took up to 72, so the tables full at
	// MaxTracked hold 2 MiB instead of 20.3 (BenchmarkFullTablesHeap);
	// hashing is cheaper than comparing the long keys, too. A lookup
	// meets another key's state with probability about n/2⁴⁰ (3·10⁻⁸ for
	// a full table); a random seed per engine keeps anyone from making
	// keys collide.
	seed    maphash.Seed
	dedup   table64
	flows   table64
	sources table64
}

// dedupKey identifies "the same message": router, quoted flow, MTU.
// Addresses are As16 of normalised addresses: injective, and pointer-free
// so the garbage collector never scans the tables.
type dedupKey struct {
	router, src, dst [16]byte
	mtu              uint32
	sport, dport     uint16
	proto            uint8
}

// flowKey is what tells one stalled connection from another at one router:
// the remote end of the quoted packet. The quoted source is our VIP and the
// same for every flow, so it adds nothing.
type flowKey struct {
	router, dst [16]byte
	dport       uint16
	proto       uint8
}

// hash is k's seeded hash: its fields in a fixed layout, so padding
// never enters it.
func (k *dedupKey) hash(seed maphash.Seed) uint64 {
	var b [57]byte
	copy(b[0:], k.router[:])
	copy(b[16:], k.src[:])
	copy(b[32:], k.dst[:])
	binary.LittleEndian.PutUint32(b[48:], k.mtu)
	binary.LittleEndian.PutUint16(b[52:], k.sport)
	binary.LittleEndian.PutUint16(b[54:], k.dport)
	b[56] = k.proto
	return maphash.Bytes(seed, b[:])
}

func (k *flowKey) hash(seed maphash.Seed) uint64 {
	var b [35]byte
	copy(b[0:], k.router[:])
	copy(b[16:], k.dst[:])
	binary.LittleEndian.PutUint16(b[32:], k.dport)
	b[34] = k.proto
	return maphash.Bytes(seed, b[:])
}

// New returns an Engine for cfg, or cfg's Validate error.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		ignore:   normPrefixes(cfg.IgnoreNetworks),
		relayFor: normPrefixes(cfg.RelayFor),
		window:   int64(cfg.DedupWindow),
		flowLim:  newLimit(cfg.FlowRate, cfg.FlowBurst),
		srcLim:   newLimit(cfg.SourceRate, cfg.SourceBurst),
		globLim:  newLimit(cfg.GlobalRate, cfg.GlobalBurst),
		frameLim: newLimit(cfg.GlobalFrameRate, cfg.GlobalFrameBurst),
	}
	e.globalTAT, e.frameTAT = -timeLimit, -timeLimit // full
	if len(cfg.Ports) > 0 {
		e.ports = new([1024]uint64)
		for _, p := range cfg.Ports {
			e.ports[p/64] |= 1 << (p % 64)
		}
	}
	// Keys enter a table only when a message is relayed, so one generation
	// holds at most what the global bucket lets through in a horizon; size
	// the maps for that and they never grow with the default settings.
	perGen := func(horizon int64) int {
		h := max(horizon, minHorizon)
		n := float64(cfg.GlobalBurst) + cfg.GlobalRate*float64(h)/1e9
		return int(min(n, float64(cfg.MaxTracked)))
	}
	dedupHint := 0 // a zero window disables the table
	if e.window > 0 {
		dedupHint = perGen(e.window)
	}
	e.seed = maphash.MakeSeed()
	e.dedup = newTable64(cfg.MaxTracked, dedupHint, e.window, cfg.Memory)
	e.flows = newTable64(cfg.MaxTracked, perGen(e.flowLim.refill()), e.flowLim.refill(), cfg.Memory)
	e.sources = newTable64(cfg.MaxTracked, perGen(e.srcLim.refill()), e.srcLim.refill(), cfg.Memory)
	return e, nil
}

// normPrefixes masks prefixes and turns IPv4-mapped ones (::ffff:a.b.c.d/n,
// n >= 96) into IPv4, to match the normalised addresses they are tested against.
func normPrefixes(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		a := p.Addr().WithZone("")
		if a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		} else {
			p = netip.PrefixFrom(a, p.Bits())
		}
		out = append(out, p.Masked())
	}
	return out
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Close gives the tables' arrays back to Config.Memory. The Engine must not
// be used afterwards.
func (e *Engine) Close() {
	e.dedup.free()
	e.flows.free()
	e.sources.free()
}

// Trim lets the tables expire what they hold as of now, as a Decide would,
// and gives back the arrays they grew once everything in them has expired:
// the daemon calls it when no message has come for a while, since without
// messages nothing else would. It reports whether a later Trim has more to
// give back. Like Decide, it must not run concurrently with other calls.
func (e *Engine) Trim(now time.Time) bool {
	t := e.clock(now)
	more := e.dedup.trim(t)
	more = e.flows.trim(t) || more
	return e.sources.trim(t) || more
}

// TableBytes is the memory the tables' arrays take. Like Decide, it must
// not run concurrently with other calls.
func (e *Engine) TableBytes() int {
	return 8 * (e.dedup.slots() + e.flows.slots() + e.sources.slots())
}

// clock turns now into the engine's int64 nanoseconds. Sub uses the
// monotonic reading when both times have one (time.Now does), so a wall
// clock step neither opens nor closes the buckets.
func (e *Engine) clock(now time.Time) int64 {
	if !e.started {
		e.started, e.base = true, now
	}
	return min(max(int64(now.Sub(e.base)), -timeLimit), timeLimit)
}

// Decide returns drop.None to relay m, or why not. m must not be nil; v may
// be nil (nothing is known: every message gets NoPeers or an earlier reason).
// now is passed in for testability; it should come from time.Now.
//
// A drop.None answer has already been charged to the rate limits and
// recorded for duplicate suppression: relay the message.
func (e *Engine) Decide(now time.Time, m *ptb.Message, o Origin, v *View) drop.Reason {
	return e.DecideFrames(now, m, o, v, -1)
}

// DecideFrames is Decide for a message that will cost frames frames (the
// peers it goes to; 1 for a broadcast), which the caller chose, for example
// by targeting the nodes that can own the flow. frames < 0, or more than
// the message's family has peers in v, means one per such peer; 0 is NoPeers.
func (e *Engine) DecideFrames(now time.Time, m *ptb.Message, o Origin, v *View, frames int) drop.Reason {
	if v == nil {
		v = &emptyView
	}
	src, dst := norm(m.Src), norm(m.Dst)
	if r := loopGuard(src, o, v); r != drop.None { // 1.
		return r
	}
	if r := e.scope(m, src, dst); r != drop.None { // 2-4.
		return r
	}
	frames, r := fanOut(m.Family, dst, v, frames) // 5.
	if r != drop.None {
		return r
	}
	return e.charge(e.clock(now), m, src, frames) // 6-7.
}

// loopGuard recognises a relayed copy by its sender (step 1).
func loopGuard(src netip.Addr, o Origin, v *View) drop.Reason {
	switch {
	case o.Tunnel:
		return drop.FromPeer
	case v.isSelf(src):
		return drop.FromSelf
	case v.isPeer(src):
		return drop.FromPeer
	case o.HasMAC && v.isPeerMAC(o.SrcMAC):
		return drop.FromPeer
	case o.HasMAC && v.isSelfMAC(o.SrcMAC):
		return drop.FromSelf
	case o.HasMAC && o.DstMAC[0]&1 != 0:
		return drop.L2Broadcast
	}
	return drop.None
}

// scope applies the operator's filters and requires the message to be
// about a packet its addressee sent (steps 2-4).
func (e *Engine) scope(m *ptb.Message, src, dst netip.Addr) drop.Reason {
	if contains(e.ignore, src) {
		return drop.IgnoredNetwork
	}
	innerSrc := norm(m.Inner.Src)
	if innerSrc != dst {
		return drop.ForeignInner
	}
	if len(e.relayFor) > 0 && !contains(e.relayFor, innerSrc) {
		return drop.NotRelayFor
	}
	if e.ports != nil && e.ports[m.Inner.SrcPort/64]&(1<<(m.Inner.SrcPort%64)) == 0 {
		return drop.PortNotListed
	}
	return drop.None
}

// fanOut says whether anyone is to be told and what the message costs in
// frames (step 5). A fan-out is a subset of the message's recipients:
// never count more; none (a targeted fan-out found no peer that can own
// the flow) is nobody to relay to.
func fanOut(fam uint8, dst netip.Addr, v *View, frames int) (int, drop.Reason) {
	if fam != 4 && fam != 6 {
		fam = 6
		if dst.Is4() {
			fam = 4
		}
	}
	n := len(v.Recipients(fam))
	if n == 0 {
		if v.Peers().Len() > 0 {
			return 0, drop.NoPeersOfFamily
		}
		return 0, drop.NoPeers // a nil view knows no peers either
	}
	if frames < 0 || frames > n {
		frames = n
	}
	if frames == 0 {
		return 0, drop.NoPeers
	}
	return frames, drop.None
}

// charge drops a duplicate (step 6: only a relay records an entry, and a
// duplicate does not refresh it, so a steady stream still gets one relay
// per window) or a message over a limit (step 7: all are checked before
// any is charged, so a message dropped by one costs nothing in the
// others), else records and charges the relay.
func (e *Engine) charge(t int64, m *ptb.Message, src netip.Addr, frames int) drop.Reason {
	router := src.As16()
	innerDst := norm(m.Inner.Dst)
	var dk uint64
	if e.window > 0 {
		dk = (&dedupKey{
			router: router, src: norm(m.Inner.Src).As16(), dst: innerDst.As16(),
			mtu: m.MTU, sport: m.Inner.SrcPort, dport: m.Inner.DstPort, proto: m.Inner.Proto,
		}).hash(e.seed)
		if at, ok := e.dedup.get(dk); ok && t-at < e.window {
			return drop.Duplicate
		}
	}
	fk := (&flowKey{router: router, dst: innerDst.As16(), dport: m.Inner.DstPort, proto: m.Inner.Proto}).hash(e.seed)
	flowTAT, ok := e.flows.get(fk)
	if !ok {
		flowTAT = t
	}
	sk := maphash.Bytes(e.seed, router[:])
	srcTAT, ok := e.sources.get(sk)
	if !ok {
		srcTAT = t
	}
	switch {
	case !e.flowLim.allows(flowTAT, t):
		return drop.RateLimitedFlow
	case !e.srcLim.allows(srcTAT, t):
		return drop.RateLimitedSource
	case !e.globLim.allows(e.globalTAT, t):
		return drop.RateLimitedGlobal
	case !e.frameLim.allowsN(e.frameTAT, t, frames):
		return drop.RateLimitedFrames
	}
	e.globalTAT = e.globLim.take(e.globalTAT, t)
	e.frameTAT = e.frameLim.takeN(e.frameTAT, t, frames)
	e.sources.put(sk, e.srcLim.take(srcTAT, t), t)
	e.flows.put(fk, e.flowLim.take(flowTAT, t), t)
	if e.window > 0 {
		e.dedup.put(dk, t, t)
	}
	return drop.None
}

// emptyView stands in for a nil View: no self, no peers.
var emptyView View
