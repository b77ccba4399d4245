//go:build linux

package transport

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// uplink is one interface a link transport sends out of.
type uplink struct {
	name    string
	ifindex int
	mac     [6]byte
}

// openUplinks opens a send-only AF_PACKET socket on each named interface.
//
// Each is bound with protocol 0: Linux registers no packet handler for such
// a socket (packet(7): "If protocol is set to zero, no packets are
// received"), so it never queues received traffic and needs no drop-all BPF
// filter. SOCK_RAW lets us write the Ethernet header ourselves, so one
// bound socket serves every destination MAC without a per-send sockaddr,
// and Linux derives skb->protocol from our EtherType.
func openUplinks(h *netlink.Handle, names []string) ([]uplink, []*sock, error) {
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("no uplink interface given")
	}
	var ups []uplink
	var socks []*sock
	fail := func(err error) ([]uplink, []*sock, error) {
		for _, s := range socks {
			s.f.Close()
		}
		return nil, nil, err
	}
	for _, name := range names {
		link, err := h.LinkByName(name)
		if err != nil {
			return fail(fmt.Errorf("interface %q: %w", name, err))
		}
		attrs := link.Attrs()
		if len(attrs.HardwareAddr) != 6 {
			return fail(fmt.Errorf("interface %q has no Ethernet address", name))
		}
		s, err := openPacketSock(attrs.Index, name)
		if err != nil {
			return fail(err)
		}
		ups = append(ups, uplink{name: name, ifindex: attrs.Index, mac: [6]byte(attrs.HardwareAddr)})
		socks = append(socks, s)
	}
	return ups, socks, nil
}

func openPacketSock(ifindex int, name string) (*sock, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket on %q: %w", name, os.NewSyscallError("socket", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("AF_PACKET socket on %q: %w", name, os.NewSyscallError("bind", err))
	}
	return newSock(fd, 0, "packet-"+name, ethHeaderLen, 0)
}
