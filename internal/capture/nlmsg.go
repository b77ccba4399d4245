package capture

import (
	"encoding/binary"
	"errors"
	"syscall"
)

// Netlink and NFLOG wire constants (linux/netlink.h, linux/netfilter/nfnetlink_log.h).
const (
	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlaHdrLen    = 4
	nlmsgError   = 2
	nlmsgDone    = 3
	nlmsgOverrun = 4

	nfnlSubsysULOG = 4
	nfulnlMsgPkt   = nfnlSubsysULOG<<8 | 0 // NFULNL_MSG_PACKET
	nfulnlMsgCfg   = nfnlSubsysULOG<<8 | 1 // NFULNL_MSG_CONFIG

	nfulaPacketHdr = 1
	nfulaIfIndexIn = 4
	nfulaPayload   = 9
	nfulaSeq       = 12
	nfulaHwType    = 15
	nfulaHwHeader  = 16

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// errMalformed is a netlink message whose lengths do not add up. The kernel
// never sends one, so it means a bug or a buffer mix-up, never bad input
// from the network: the packet bytes are inside an attribute.
var errMalformed = errors.New("malformed netlink message")

// nflogPacket is one NFLOG_MSG_PACKET's attributes, slices into the
// receive buffer (valid until the next read).
type nflogPacket struct {
	Payload  []byte
	HwHeader []byte
	HwType   uint16
	InDev    uint32
	Seq      uint32
	HasSeq   bool
}

// nlReader walks the netlink messages of one datagram in place.
type nlReader struct {
	b []byte
}

// next returns the next message's type and body (after the 16-byte
// header), or ok == false at the end. A datagram cut short is errMalformed.
func (r *nlReader) next() (typ uint16, seq uint32, body []byte, ok bool, err error) {
	if len(r.b) < nlmsgHdrLen {
		return 0, 0, nil, false, nil // trailing padding
	}
	n := int(binary.NativeEndian.Uint32(r.b))
	if n < nlmsgHdrLen || n > len(r.b) {
		r.b = nil
		return 0, 0, nil, false, errMalformed
	}
	typ = binary.NativeEndian.Uint16(r.b[4:])
	seq = binary.NativeEndian.Uint32(r.b[8:])
	body = r.b[nlmsgHdrLen:n]
	r.b = r.b[min(align4(n), len(r.b)):]
	return typ, seq, body, true, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// nlError decodes an NLMSG_ERROR body: the negated errno (0 for an ACK).
func nlError(body []byte) error {
	if len(body) < 4 {
		return errMalformed
	}
	if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
		return syscall.Errno(-e)
	}
	return nil
}

// parsePacket decodes an NFULNL_MSG_PACKET body (nfgenmsg, then
// attributes) into p without allocating. Unknown attributes are skipped.
func parsePacket(body []byte, p *nflogPacket) error {
	*p = nflogPacket{}
	if len(body) < nfgenHdrLen {
		return errMalformed
	}
	b := body[nfgenHdrLen:]
	for len(b) >= nlaHdrLen {
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return errMalformed
		}
		v := b[nlaHdrLen:n]
		switch binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask {
		case nfulaPayload:
			p.Payload = v
		case nfulaHwHeader:
			p.HwHeader = v
		case nfulaHwType:
			if len(v) >= 2 {
				p.HwType = binary.BigEndian.Uint16(v)
			}
		case nfulaIfIndexIn:
			if len(v) >= 4 {
				p.InDev = binary.BigEndian.Uint32(v)
			}
		case nfulaSeq:
			if len(v) >= 4 {
				p.Seq, p.HasSeq = binary.BigEndian.Uint32(v), true
			}
		}
		b = b[min(align4(n), len(b)):]
	}
	return nil
}

// Config requests (NFULNL_MSG_CONFIG) and their attributes.
const (
	nfulaCfgCmd     = 1
	nfulaCfgMode    = 2
	nfulaCfgTimeout = 4 // 1/100 s; NFULA_CFG_NLBUFSIZ (3) comes first
	nfulaCfgQThresh = 5
	nfulaCfgFlags   = 6

	nfulnlCfgCmdBind   = 1
	nfulnlCfgCmdUnbind = 2
	nfulnlCopyPacket   = 2
	nfulnlCfgFSeq      = 1

	nlmFRequest = 0x1
	nlmFAck     = 0x4
)

// configMsg appends to b one NFULNL_MSG_CONFIG request for group with the
// given attributes (type, value pairs, values already in wire order).
func configMsg(b []byte, seq uint32, group uint16, attrs ...nla) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, nfulnlMsgCfg)
	b = binary.NativeEndian.AppendUint16(b, nlmFRequest|nlmFAck)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel fills it in
	b = append(b, syscall.AF_UNSPEC, 0)        // nfgenmsg: family, version
	b = binary.BigEndian.AppendUint16(b, group)
	for _, a := range attrs {
		b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(a.v)))
		b = binary.NativeEndian.AppendUint16(b, a.typ)
		b = append(b, a.v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

type nla struct {
	typ uint16
	v   []byte
}

// cfgMode is NFULA_CFG_MODE: copy range (be32), copy mode, padding.
func cfgMode(copyRange uint32) nla {
	v := binary.BigEndian.AppendUint32(nil, copyRange)
	return nla{nfulaCfgMode, append(v, nfulnlCopyPacket, 0)}
}
