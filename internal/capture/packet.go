// Package capture receives the packets the firewall rule logs to an NFLOG
// group and hands them, one at a time and without batching delay, to the
// packet path.
package capture

import "time"

// Packet is one logged packet. Payload and the struct are only valid during
// the handler call: the listener reuses them.
type Packet struct {
	Payload  []byte    // the IP packet, from its IP header on
	SrcMAC   [6]byte   // link-layer source, when HasMAC
	DstMAC   [6]byte   // link-layer destination, when HasMAC
	HasMAC   bool      // the kernel supplied an Ethernet header
	IfIndex  uint32    // input interface
	Received time.Time // when the listener read it
}
