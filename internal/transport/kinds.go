package transport

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
)

// Options is what the daemon hands a transport when it opens it.
type Options struct {
	// Uplinks are the interfaces PTBs arrive on; link transports send out
	// of them.
	Uplinks []string
	// TTL is the TTL / hop limit of re-addressed copies (routed).
	TTL int
	// TunnelPort is the UDP port peers' tunnel receivers listen on.
	TunnelPort int
	// TunnelKeys signs tunnel datagrams; TunnelInsecure allows none (labs).
	TunnelKeys     KeySource
	TunnelInsecure bool
	// Logger receives the transport's events; nil discards them.
	Logger *slog.Logger
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Kind describes one transport: what it needs from the daemon and how its
// copies are told apart from a router's message at the peer.
type Kind struct {
	Name string
	// Link: the transport sends frames out of the uplinks itself, so it is
	// reopened when the set of uplinks or one of them changes.
	Link bool
	// AnyFamily: a peer known by one address family receives messages of
	// both (by MAC, or inside UDP). Otherwise a peer gets only messages of
	// the families it has an address of.
	AnyFamily bool
	// Receiver: peers must run go-pmtud's tunnel receiver.
	Receiver bool
	// CopiesKnownBy says how a peer's loop guard recognises a relayed copy
	// (readiness detail and logs).
	CopiesKnownBy string
	// Open opens the transport in the calling thread's network namespace.
	Open func(Options) (Sender, error)
}

var kinds = map[string]Kind{}

// register adds a transport; each transport's file calls it from init.
func register(k Kind) {
	if _, dup := kinds[k.Name]; dup {
		panic("transport: " + k.Name + " registered twice")
	}
	kinds[k.Name] = k
}

// Lookup returns the transport called name.
func Lookup(name string) (Kind, error) {
	k, ok := kinds[name]
	if !ok {
		return Kind{}, fmt.Errorf("unknown transport %q (want one of %v)", name, Names())
	}
	return k, nil
}

// Names lists the registered transports, sorted.
func Names() []string {
	out := make([]string, 0, len(kinds))
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
