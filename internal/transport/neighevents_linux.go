//go:build linux

package transport

import (
	"errors"
	"net/netip"

	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Neighbour events. A peer that was dead and answers again (a node powered
// back on) is resolved by the kernel's managed entry on its own; the
// refresher learns it from the kernel's RTM_NEWNEIGH notification instead
// of waiting for its next retry, which backoff may have put 30 s away. The
// same holds for a resolved peer whose entry fails or is deleted.
// Notifications that keep a peer's usability and MAC (REACHABLE to STALE
// and back) cause no refresh, so a large cluster does not make l2 poll.

// neighEvent is one notification for an address on our interface.
type neighEvent struct {
	addr   netip.Addr
	usable bool
	mac    [6]byte
}

// dialNeighEvents opens a socket subscribed to neighbour notifications, in
// the calling thread's network namespace.
func dialNeighEvents() (*mnl.Conn, error) {
	return mnl.Dial(unix.NETLINK_ROUTE, &mnl.Config{Groups: unix.RTMGRP_NEIGH})
}

// readEvents forwards notifications for our interface to n.events until
// the socket is closed. It never blocks on the channel: when it is full,
// a refresh is due anyway (noted by overflow).
func (n *neighbours) readEvents() {
	defer n.wg.Done()
	for {
		msgs, err := n.ev.Receive()
		if err != nil {
			select {
			case <-n.done:
				return
			default:
			}
			if errors.Is(err, unix.ENOBUFS) {
				n.sendEvent(neighEvent{}) // notifications were lost: re-read the table
				continue
			}
			// Retries and ticks still work without notifications.
			n.log.Warn("l2: neighbour notifications failed; relying on retries", "iface", n.iface, "err", err)
			return
		}
		for _, m := range msgs {
			if m.Header.Type != rtmNewNeigh && m.Header.Type != rtmDelNeigh {
				continue
			}
			k, ok, err := decodeNeigh(m.Data)
			if err != nil || !ok || k.ifindex != n.ifindex {
				continue
			}
			n.sendEvent(neighEvent{addr: k.addr, usable: m.Header.Type == rtmNewNeigh && k.usable(), mac: k.mac})
		}
	}
}

func (n *neighbours) sendEvent(e neighEvent) {
	select {
	case n.events <- e:
	default:
		n.sendOverflow()
	}
}

func (n *neighbours) sendOverflow() {
	select {
	case n.events <- neighEvent{}: // an invalid address: refresh
	default:
	}
}

// eventMatters reports whether e changes what the table says about a
// tracked address (usable or not, which MAC), or stands for lost events.
func (n *neighbours) eventMatters(e neighEvent) bool {
	if !e.addr.IsValid() {
		return true
	}
	if _, ok := n.tracked[e.addr]; !ok {
		return false
	}
	cur, ok := n.out.Load().m[e.addr]
	had := ok && cur.state != StateUnresolved && cur.state != StateFailed && cur.state != StateNotOnLink
	return had != e.usable || (e.usable && cur.mac != e.mac)
}

// drainEvents reports whether e or any event queued meanwhile matters.
func (n *neighbours) drainEvents(e neighEvent) bool {
	need := n.eventMatters(e)
	for i := 0; i < cap(n.events); i++ {
		select {
		case e := <-n.events:
			need = n.eventMatters(e) || need
		default:
			return need
		}
	}
	return need
}
