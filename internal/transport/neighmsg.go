package transport

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/mdlayher/netlink"
)

// Neighbour messages (rtnetlink(7), RTM_*NEIGH) encoded and decoded by hand:
// the netlink library l2 uses elsewhere neither sets nor reports the
// neighbour's protocol (NDA_PROTOCOL), which is how go-pmtud marks the
// entries it creates.

// NeighProtocol is the neighbour protocol go-pmtud writes into the managed
// neighbour entries it creates for l2 (`ip neigh show` prints "proto 213").
// At start, entries on the interface that carry it but belong to no peer are
// left over from an earlier run that could not clean up (SIGKILL, OOM kill)
// and are removed. 213 is not among the protocol numbers of
// include/uapi/linux/rtnetlink.h or iproute2's rt_protos; name it for ip(8)
// with `echo "213 go-pmtud" > /etc/iproute2/rt_protos.d/go-pmtud.conf`.
const NeighProtocol = 213

// Kernel constants (linux/neighbour.h, linux/rtnetlink.h), here so that this
// file builds and is tested on any platform.
const (
	rtmNewNeigh = 28
	rtmDelNeigh = 29
	rtmGetNeigh = 30

	ndaDst      = 1
	ndaLLAddr   = 2
	ndaIfindex  = 8
	ndaProtocol = 12
	ndaFlagsExt = 15

	ntfUse         = 0x01
	ntfExtManaged  = 0x01
	ndmsgLen       = 12
	afInet         = 2
	afInet6        = 10
	nudFailed      = 0x20
	nudIncomplete  = 0x01
	nudValidStates = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80 // REACHABLE STALE DELAY PROBE NOARP PERMANENT
)

// kernelNeigh is one entry of the kernel's neighbour table.
type kernelNeigh struct {
	ifindex  int
	addr     netip.Addr // unmapped
	mac      [6]byte
	hasMAC   bool // an Ethernet address is present
	state    uint16
	protocol uint8
	managed  bool
}

// usable reports whether the entry's MAC may be sent to (NUD_VALID).
func (k kernelNeigh) usable() bool { return k.hasMAC && k.state&nudValidStates != 0 }

// ours reports whether go-pmtud created the entry.
func (k kernelNeigh) ours() bool { return k.protocol == NeighProtocol }

func ndmsg(a netip.Addr, ifindex int, state uint16, flags uint8) []byte {
	b := make([]byte, ndmsgLen)
	b[0] = afInet
	if a.Is6() {
		b[0] = afInet6
	}
	binary.NativeEndian.PutUint32(b[4:], uint32(ifindex))
	binary.NativeEndian.PutUint16(b[8:], state)
	b[10] = flags
	return b
}

// encodeNeighManaged is the body of RTM_NEWNEIGH for `ip neigh replace a dev
// ifindex managed proto NeighProtocol`: the kernel resolves it at once and
// keeps it resolved.
func encodeNeighManaged(a netip.Addr, ifindex int) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ndaDst, a.AsSlice())
	ae.Uint32(ndaFlagsExt, ntfExtManaged)
	ae.Uint8(ndaProtocol, NeighProtocol)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(ndmsg(a, ifindex, 0, 0), attrs...), nil
}

// encodeNeighUse is the body of RTM_NEWNEIGH with NTF_USE: one resolution,
// as a packet to a would trigger (kernels without managed entries).
func encodeNeighUse(a netip.Addr, ifindex int) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ndaDst, a.AsSlice())
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(ndmsg(a, ifindex, 0, ntfUse), attrs...), nil
}

// encodeNeighDump is the body of an RTM_GETNEIGH dump request for one
// interface: NDA_IFINDEX makes the kernel filter (neigh_valid_dump_req), so
// a node with a veth per pod does not send us every pod's entries.
func encodeNeighDump(ifindex int) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(ndaIfindex, uint32(ifindex))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(make([]byte, ndmsgLen), attrs...), nil // AF_UNSPEC: both families
}

// encodeNeighDel is the body of RTM_DELNEIGH for a on ifindex.
func encodeNeighDel(a netip.Addr, ifindex int) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(ndaDst, a.AsSlice())
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(ndmsg(a, ifindex, 0, 0), attrs...), nil
}

var errBadNeigh = errors.New("malformed neighbour message")

// decodeNeigh decodes the body of an RTM_NEWNEIGH message from a dump. An
// entry without a destination address (a bridge FDB entry) has ok false.
func decodeNeigh(b []byte) (k kernelNeigh, ok bool, err error) {
	if len(b) < ndmsgLen {
		return k, false, errBadNeigh
	}
	k.ifindex = int(int32(binary.NativeEndian.Uint32(b[4:])))
	k.state = binary.NativeEndian.Uint16(b[8:])
	ad, err := netlink.NewAttributeDecoder(b[ndmsgLen:])
	if err != nil {
		return k, false, err
	}
	for ad.Next() {
		switch ad.Type() {
		case ndaDst:
			if a, good := netip.AddrFromSlice(ad.Bytes()); good {
				k.addr, ok = a.Unmap(), true
			}
		case ndaLLAddr:
			if mac := ad.Bytes(); len(mac) == 6 {
				k.mac, k.hasMAC = [6]byte(mac), true
			}
		case ndaProtocol:
			k.protocol = ad.Uint8()
		case ndaFlagsExt:
			k.managed = ad.Uint32()&ntfExtManaged != 0
		}
	}
	if err := ad.Err(); err != nil {
		return k, false, err
	}
	return k, ok, nil
}
