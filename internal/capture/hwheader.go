package capture

// arphrdEther is ARPHRD_ETHER, the NFULA_HWTYPE of Ethernet devices
// (including veth, bonds, bridges and VLAN devices on top of them).
const arphrdEther = 1

// ethernetMACs decodes the link-layer header the kernel copies into
// NFULA_HWHEADER: for Ethernet it is the 14-byte header as received,
// destination MAC, source MAC, EtherType (IEEE 802.3). Any other device type
// or length (a tunnel without a link layer, an InfiniBand header) yields
// ok == false, so a caller never trusts bytes that are not MACs.
func ethernetMACs(hwType uint16, hdr []byte) (src, dst [6]byte, ok bool) {
	if hwType != arphrdEther || len(hdr) != 14 {
		return src, dst, false
	}
	copy(dst[:], hdr[0:6])
	copy(src[:], hdr[6:12])
	return src, dst, true
}
