package transport

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB = [6]byte{2, 0, 0, 0, 0, 0xb}
	macR = [6]byte{2, 0, 0, 0, 0, 0xf} // the router's
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestClassify(t *testing.T) {
	errRoute := errors.New("routed")
	for _, tc := range []struct {
		name     string
		in       map[netip.Addr]neighInput
		gateways [][6]byte
		want     map[string]NeighState // by address
		macs     [][6]byte
	}{
		{
			name: "distinct MACs",
			in: map[netip.Addr]neighInput{
				addr("10.0.0.2"): {name: "n2", mac: macA, ok: true},
				addr("10.0.0.3"): {name: "n3", mac: macB, ok: true},
			},
			want: map[string]NeighState{"10.0.0.2": StateResolved, "10.0.0.3": StateResolved},
			macs: [][6]byte{macA, macB},
		},
		{
			name: "one node's two families share its MAC",
			in: map[netip.Addr]neighInput{
				addr("10.0.0.2"): {name: "n2", mac: macA, ok: true},
				addr("fd00::2"):  {name: "n2", mac: macA, ok: true},
			},
			want: map[string]NeighState{"10.0.0.2": StateResolved, "fd00::2": StateResolved},
			macs: [][6]byte{macA},
		},
		{
			name: "static peers by address: IPv4 and IPv6 of one node",
			in: map[netip.Addr]neighInput{
				addr("10.0.0.2"): {name: "10.0.0.2", mac: macA, ok: true},
				addr("fd00::2"):  {name: "fd00::2", mac: macA, ok: true},
			},
			want: map[string]NeighState{"10.0.0.2": StateResolved, "fd00::2": StateResolved},
			macs: [][6]byte{macA},
		},
		{
			name: "proxy ARP: two peers of one family on one MAC",
			in: map[netip.Addr]neighInput{
				addr("10.0.0.2"):  {name: "n2", mac: macA, ok: true},
				addr("10.1.0.5"):  {name: "n5", mac: macR, ok: true},
				addr("10.1.0.6"):  {name: "n6", mac: macR, ok: true},
				addr("fd01::6"):   {name: "n6", mac: macB, ok: true},
				addr("10.0.0.99"): {name: "n9", err: ErrNoMAC, state: StateFailed},
			},
			want: map[string]NeighState{"10.0.0.2": StateResolved, "10.1.0.5": StateNotOnSegment,
				"10.1.0.6": StateNotOnSegment, "fd01::6": StateResolved, "10.0.0.99": StateFailed},
			macs: [][6]byte{macA, macB},
		},
		{
			name: "proxy ARP: one peer on the gateway's MAC",
			in: map[netip.Addr]neighInput{
				addr("10.0.0.2"): {name: "n2", mac: macA, ok: true},
				addr("10.1.0.5"): {name: "n5", mac: macR, ok: true},
				addr("10.2.0.1"): {name: "n7", err: errRoute, state: StateNotOnLink},
			},
			gateways: [][6]byte{macR},
			want:     map[string]NeighState{"10.0.0.2": StateResolved, "10.1.0.5": StateNotOnSegment, "10.2.0.1": StateNotOnLink},
			macs:     [][6]byte{macA},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := map[[6]byte]bool{}
			for _, m := range tc.gateways {
				gw[m] = true
			}
			tab := classify(tc.in, gw)
			for a, want := range tc.want {
				e := tab.m[addr(a)]
				if e.state != want {
					t.Errorf("%s: state %v, want %v", a, e.state, want)
				}
				if (e.err == nil) != (want == StateResolved) {
					t.Errorf("%s: err %v with state %v", a, e.err, e.state)
				}
				if want == StateNotOnSegment && !errors.Is(e.err, ErrNotOnSegment) {
					t.Errorf("%s: err %v, want ErrNotOnSegment", a, e.err)
				}
			}
			if !slices.Equal(tab.macs, tc.macs) {
				t.Errorf("macs %x, want %x", tab.macs, tc.macs)
			}
		})
	}
}

func TestPeerStatesTakesEachNodesBestAddress(t *testing.T) {
	tab := classify(map[netip.Addr]neighInput{
		addr("10.0.0.2"):  {name: "n2", err: ErrNoMAC, state: StateFailed},
		addr("fd00::2"):   {name: "n2", mac: macA, ok: true},
		addr("10.0.0.3"):  {name: "n3", err: ErrNoMAC, state: StateUnresolved},
		addr("10.9.0.1"):  {name: "n1", err: ErrNotOnLink, state: StateNotOnLink},
		addr("10.0.0.10"): {name: "n1", err: ErrNoMAC, state: StateFailed},
	}, nil)
	got := tab.peerStates()
	want := []struct {
		name  string
		state NeighState
		addr  string
	}{{"n1", StateFailed, "10.0.0.10"}, {"n2", StateResolved, "fd00::2"}, {"n3", StateUnresolved, "10.0.0.3"}}
	if len(got) != len(want) {
		t.Fatalf("peerStates = %+v", got)
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].State != w.state || got[i].Addr != addr(w.addr) {
			t.Errorf("peerStates[%d] = %+v, want %v", i, got[i], w)
		}
	}
	if got[1].MAC != macA || got[1].Err != nil {
		t.Errorf("resolved peer: %+v", got[1])
	}
}

func TestResolveGapBacksOff(t *testing.T) {
	var got []time.Duration
	for tries := 0; tries <= 8; tries++ {
		got = append(got, resolveGap(tries))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("gaps %v, want %v", got, want)
	}
	if resolveGap(1<<30) != maxResolveGap {
		t.Error("no cap for many tries")
	}
}

func TestNeighStateNames(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range NeighStates() {
		n := s.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("state %d: name %q", s, n)
		}
		seen[n] = true
	}
	if NeighState(200).String() != "unknown" {
		t.Error("out of range")
	}
}

func TestCountStates(t *testing.T) {
	c := CountStates([]PeerState{{State: StateResolved}, {State: StateResolved}, {State: StateNotOnSegment}})
	if len(c) != int(numNeighStates) || c["resolved"] != 2 || c["not_on_segment"] != 1 || c["failed"] != 0 {
		t.Errorf("CountStates = %v", c)
	}
}

func TestSummarizeStates(t *testing.T) {
	ps := []PeerState{
		{Name: "n1", State: StateResolved},
		{Name: "n2", State: StateFailed, Err: ErrNoMAC},
		{Name: "n3", State: StateNotOnSegment, Err: errors.New("shared")},
		{Name: "n4", State: StateNotOnLink, Err: errors.New("via gw")},
	}
	if got, want := SummarizeStates(ps, 0), "1 of 4 peers resolved; n2 failed (no MAC for peer), n3 not_on_segment (shared), n4 not_on_link (via gw)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got, want := SummarizeStates(ps, 1), "1 of 4 peers resolved; n2 failed (no MAC for peer); and 2 more"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := SummarizeStates(nil, 3); got != "0 of 0 peers resolved" {
		t.Errorf("empty: %q", got)
	}
}
