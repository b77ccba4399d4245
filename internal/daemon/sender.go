package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// reopenable is the transport the relay sends through. The l2 and
// broadcast transports bind an AF_PACKET socket to the uplink's ifindex;
// when the uplink is deleted and created again under the same name (a
// bond or VLAN rebuilt by the network manager), the old socket fails with
// ENXIO/ENODEV forever. The daemon then opens a fresh transport and swaps
// it in here; the relay keeps the same Sender.
type reopenable struct {
	mu  sync.RWMutex // Send holds it shared; a swap holds it briefly, exclusively
	cur transport.Sender
}

var (
	_ transport.Sender    = (*reopenable)(nil)
	_ transport.MACSource = (*reopenable)(nil)
	_ peerAware           = (*reopenable)(nil)
)

func (r *reopenable) Name() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur.Name()
}

func (r *reopenable) Send(m *ptb.Message, to []peers.Peer, onErr func(netip.Addr, error)) int {
	r.mu.RLock()
	n := r.cur.Send(m, to, onErr)
	r.mu.RUnlock()
	return n
}

// PeerMACs delegates to the transport, nil if it knows no MACs.
func (r *reopenable) PeerMACs() [][6]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ms, ok := r.cur.(transport.MACSource); ok {
		return ms.PeerMACs()
	}
	return nil
}

// SetPeers delegates to transports that prepare per-peer state.
func (r *reopenable) SetPeers(ps []peers.Peer) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if pa, ok := r.cur.(peerAware); ok {
		pa.SetPeers(ps)
	}
}

// Unresolved delegates to transports that resolve peers (l2).
func (r *reopenable) Unresolved() map[netip.Addr]error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if u, ok := r.cur.(interface{ Unresolved() map[netip.Addr]error }); ok {
		return u.Unresolved()
	}
	return nil
}

// swap installs next and closes the transport it replaces, once no Send
// uses it any more.
func (r *reopenable) swap(next transport.Sender) error {
	r.mu.Lock()
	old := r.cur
	r.cur = next
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenable) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.Close()
}

// bindsToLink reports whether the transport's sockets are bound to the
// uplink's ifindex (and so must be reopened when it is recreated).
func bindsToLink(transportName string) bool {
	return transportName == config.TransportL2 || transportName == config.TransportBroadcast
}

// uplinkChanged looks the uplink up again by name. It returns the current
// interface and whether it is another one than was (a new ifindex or MAC:
// deleted and recreated); err says the name is gone for now.
func uplinkChanged(was *net.Interface) (*net.Interface, bool, error) {
	now, err := net.InterfaceByName(was.Name)
	if err != nil {
		return nil, false, fmt.Errorf("uplink %s is gone: %w", was.Name, err)
	}
	return now, now.Index != was.Index || !bytes.Equal(now.HardwareAddr, was.HardwareAddr), nil
}

// followUplink reopens the transport after the uplink was recreated. It
// returns the interface to use from now on (was, if nothing changed or the
// reopen failed, so it is tried again next time), and the error readiness
// should show, if any.
func followUplink(was *net.Interface, transportName string, sender *reopenable, open func() (transport.Sender, error), log *slog.Logger) (*net.Interface, error) {
	now, changed, err := uplinkChanged(was)
	if err != nil {
		return was, err
	}
	if !changed {
		return was, nil
	}
	log.Warn("uplink was recreated", "iface", now.Name, "old_ifindex", was.Index, "ifindex", now.Index,
		"old_mac", was.HardwareAddr.String(), "mac", now.HardwareAddr.String())
	if bindsToLink(transportName) {
		next, err := open()
		if err != nil {
			return was, fmt.Errorf("reopening the %s transport on the recreated uplink %s: %w", transportName, now.Name, err)
		}
		if err := sender.swap(next); err != nil {
			log.Debug("closing the old transport", "err", err)
		}
		log.Info("transport reopened on the recreated uplink", "transport", transportName, "iface", now.Name, "ifindex", now.Index)
	}
	return now, nil
}
