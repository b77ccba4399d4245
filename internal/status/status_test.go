package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRingKeepsTheNewestFirst(t *testing.T) {
	var g Ring
	if len(g.Last()) != 0 {
		t.Fatal("empty ring not empty")
	}
	for i := range RingSize + 3 {
		g.Add(Relay{MTU: uint32(i)})
	}
	last := g.Last()
	if len(last) != RingSize || last[0].MTU != RingSize+2 || last[RingSize-1].MTU != 3 {
		t.Fatalf("got %d entries, first mtu %d, last mtu %d", len(last), last[0].MTU, last[len(last)-1].MTU)
	}
}

func TestRingAddDoesNotAllocate(t *testing.T) {
	var g Ring
	e := Relay{At: time.Now(), Family: 6, Router: netip.MustParseAddr("2001:db8::1"), MTU: 1400, Peers: 3, Frames: 3}
	if n := testing.AllocsPerRun(1000, func() { g.Add(e) }); n != 0 {
		t.Fatalf("Add allocates %v times", n)
	}
}

func sample() Report {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Report{Transport: "l2", Node: "node-a", Started: now.Add(-time.Hour), Now: now,
		Capture:  Capture{Up: true, Group: 33, Received: 7},
		Firewall: Firewall{Mode: "nftables", Up: true},
		Peers: Peers{Total: 2, BySource: map[string]int{"kubernetes": 2}, List: []Peer{
			{Name: "node-b", Addr: "10.0.0.2", Reachable: true},
			{Name: "node-c", Addr: "10.0.0.3", Problem: "no MAC", SendErrors: 4, LastError: "no route"}}},
		Counters: Counters{Received: 7, Relayed: 5, FramesSent: 9, Dropped: map[string]uint64{"duplicate": 2}},
		Recent:   []Relay{{At: now.Add(-time.Second), Family: 4, Router: netip.MustParseAddr("192.0.2.1"), MTU: 1400, Peers: 2, Frames: 2}},
	}
	r.Version.Version = "v0.1.0"
	return r
}

func TestRenderShowsStateProblemsAndRelays(t *testing.T) {
	var b bytes.Buffer
	Render(&b, sample(), false)
	out := b.String()
	for _, want := range []string{"v0.1.0", "node-a", "Capture:", "up  nflog group 33", "Rule:", "installed",
		"2 (kubernetes 2), 1 unreachable", "node-c", "UNREACHABLE: no MAC", "4 send errors", "dropped duplicate", "mtu 1400"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderCapsReachablePeersUnlessVerbose(t *testing.T) {
	r := sample()
	r.Peers.List = nil
	for i := range MaxPeerLines + 5 {
		r.Peers.List = append(r.Peers.List, Peer{Addr: "10.1.0." + strconv.Itoa(i), Reachable: true})
	}
	var b bytes.Buffer
	Render(&b, r, false)
	if !strings.Contains(b.String(), "... 5 more reachable peers") {
		t.Fatalf("no cap:\n%s", b.String())
	}
	b.Reset()
	Render(&b, r, true)
	if strings.Contains(b.String(), "more reachable") || !strings.Contains(b.String(), "10.1.0.14") {
		t.Fatalf("verbose hides peers:\n%s", b.String())
	}
}

func TestFetchRoundTrips(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(sample())
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	p, _ := strconv.Atoi(port)
	r, err := Fetch(context.Background(), host, p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Peers.List[1].SendErrors != 4 || r.Recent[0].Router != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("%+v", r)
	}
	if LocalHost("") != "127.0.0.1" || LocalHost("::") != "127.0.0.1" || LocalHost("10.0.0.1") != "10.0.0.1" {
		t.Fatal("LocalHost")
	}
}
