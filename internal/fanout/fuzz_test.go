package fanout

import (
	"net/netip"
	"slices"
	"testing"
)

// FuzzBuild builds tables from arbitrary Services and EndpointSlices over
// small pools (so keys, names and nodes collide) and checks every lookup
// against a plain reading of the rules: no Service on the key, or any
// Cluster one, or a Local one whose nodes are not all known, is every peer;
// else the union of the Local Services' endpoint nodes, sorted and unique.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x11, 0x00, 0x00, 0x00, 0x01, 0x12})
	f.Add([]byte{0x81, 0x11, 0x23, 0x00, 0x41, 0x01, 0x12, 0x80, 0x12, 0x00, 0x00, 0x02, 0x10, 0x03})
	addrs := []netip.Addr{lbIP, clusterIP, lbIP6, netip.AddrFrom16(lbIP.As16()), {}, other}
	ports := []Port{https, dns, {443, UDP}, {80, TCP}}
	nodes := []string{"", "n1", "n2", "n3", "n4"}
	names := []string{"a", "b", "c"}

	f.Fuzz(func(t *testing.T, data []byte) {
		var svcs []Service
		var sl []Slice
		// Records of 3 bytes: b0 bit 7 = service (else slice); b0 bits 0-1
		// namespace, 2-3 name; a service takes b1 as an address mask, b2 as a
		// port mask, bit 6 of b0 Local; a slice takes b1|b2 as a node mask.
		for len(data) >= 3 {
			b := data[:3]
			data = data[3:]
			ns, name := names[int(b[0])%len(names)], names[int(b[0]>>2)%len(names)]
			if b[0]&0x80 != 0 {
				s := Service{Namespace: ns, Name: name, Local: b[0]&0x40 != 0}
				for i, a := range addrs {
					if b[1]&(1<<i) != 0 {
						s.Addrs = append(s.Addrs, a)
					}
				}
				for i, p := range ports {
					if b[2]&(1<<i) != 0 {
						s.Ports = append(s.Ports, p)
					}
				}
				svcs = append(svcs, s)
				continue
			}
			s := Slice{Namespace: ns, Service: name}
			mask := uint16(b[1])<<8 | uint16(b[2])
			for i := 0; i < 16; i++ {
				if mask&(1<<i) != 0 {
					s.Nodes = append(s.Nodes, nodes[i%len(nodes)])
				}
			}
			sl = append(sl, s)
		}
		tab := Build(svcs, sl)
		for _, a := range addrs {
			for _, p := range ports {
				got, all := tab.Owners(a, p.Port, p.Proto)
				want := reference(svcs, sl, a, p)
				if all != (want == nil) || !slices.Equal(got, want) {
					t.Fatalf("Owners(%v, %v) = %v all=%v, want %v\nservices %+v\nslices %+v", a, p, got, all, want, svcs, sl)
				}
			}
		}
	})
}

// reference is the rule read literally; nil means every peer.
func reference(svcs []Service, sl []Slice, a netip.Addr, p Port) []string {
	if !a.IsValid() {
		return nil
	}
	var out []string
	claimed := false
	for _, s := range svcs {
		hit := slices.ContainsFunc(s.Addrs, func(x netip.Addr) bool { return x.IsValid() && x.Unmap() == a.Unmap() })
		if !hit || !slices.Contains(s.Ports, p) {
			continue
		}
		claimed = true
		if !s.Local {
			return nil
		}
		var ns []string
		for _, e := range sl {
			if e.Namespace == s.Namespace && e.Service == s.Name {
				ns = append(ns, e.Nodes...)
			}
		}
		if len(ns) == 0 || slices.Contains(ns, "") {
			return nil
		}
		out = append(out, ns...)
	}
	if !claimed {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
