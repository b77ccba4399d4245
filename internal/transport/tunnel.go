package transport

// Tunnel framing lives in package tunnelwire: the original IP packet, byte
// for byte, after an authenticated header.

// DefaultTunnelPort is the UDP port peers listen on (--tunnel-port).
const DefaultTunnelPort = 4442
