package ptb

// Limits is the range of reported MTUs Parse accepts, per family, inclusive.
// The zero Limits accepts nothing: start from DefaultLimits or StrictLimits.
type Limits struct {
	MinMTU4, MaxMTU4 uint32
	MinMTU6, MaxMTU6 uint32
}

// DefaultLimits accepts every MTU the protocols allow.
//
// IPv4: 68 (RFC 791's minimum, the floor RFC 1191 section 3 keeps) to 65535
// (the field is 16 bits). A frag-needed with an MTU field of 0 comes from a
// router that predates RFC 1191; RFC 1191 section 5 lets a host guess a
// plateau for it, but we relay only what the router actually said, so it is
// BadMTU here.
//
// IPv6: 1280 (RFC 8200's minimum link MTU; RFC 8201 section 4 says a node
// must not go below it) to 65535. Larger values are only meaningful for
// jumbograms (RFC 2675), which no Kubernetes node uses, and an MTU beyond
// any real link is more likely garbage than news.
func DefaultLimits() Limits {
	return Limits{MinMTU4: 68, MaxMTU4: 65535, MinMTU6: 1280, MaxMTU6: 65535}
}

// StrictLimits accepts only MTUs that are plausible below an Ethernet path:
// IPv4 576..1499 (as cloudflare/pmtud does: 576 is RFC 1122's reassembly
// floor, and a PTB claiming 1500 or more cannot be about a 1500-byte link),
// IPv6 1280..1499.
func StrictLimits() Limits {
	return Limits{MinMTU4: 576, MaxMTU4: 1499, MinMTU6: 1280, MaxMTU6: 1499}
}
