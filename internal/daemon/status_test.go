package daemon

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/health"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/status"
	"github.com/go-pmtud/go-pmtud/internal/transport"
)

// framesSender is a transport that hands a fixed number of frames to the kernel.
type framesSender struct {
	fakeSender
	frames int
}

func (f *framesSender) Send(*ptb.Message, []peers.Peer, func(int, error)) int { return f.frames }
func (f *framesSender) SendBatch(ms []transport.Outgoing, _ func(int, int, error)) int {
	for j := range ms {
		ms[j].Sent = f.frames
	}
	return f.frames * len(ms)
}

func TestStatusReportsPeersCountersAndRelays(t *testing.T) {
	m := metrics.New("l2")
	reg := peers.NewRegistry()
	a, b, c := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	reg.Update("kubernetes", []peers.Peer{{Name: "node-b", V4: a}, {Name: "node-c", V4: b}, {Name: "node-d", V4: c}})
	checks := health.New()
	checks.Ready("firewall", func() error { return errors.New("table gone") })
	st := newStatusSource(config.Config{NodeName: "node-a", Transport: "l2", NFLOGGroup: 33, Firewall: "nftables"}, m, checks, reg)
	st.set(nil, func() (bool, error) { return false, errors.New("table gone") },
		func() []transport.PeerState {
			return []transport.PeerState{{Name: "node-c", State: transport.StateUnresolved, Addr: b, Err: errors.New("no MAC yet")}}
		})
	st.peerErrs.record("node-d", errors.New("sendto: no route to host"))
	m.Relayed4.Inc()
	m.Dropped(drop.Duplicate).Add(3)

	rec := recordingSender{Sender: &framesSender{frames: 3}, ring: &st.ring}
	msg := ptb.Message{Family: 4, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.10"), MTU: 1400}
	if n := rec.Send(&msg, reg.Snapshot().All(), nil); n != 3 {
		t.Fatalf("frames %d", n)
	}
	// The relay's path: a batch, each message recorded with its own fan-out.
	msg2 := msg
	msg2.MTU = 1300
	batch := []transport.Outgoing{{M: &msg2, To: reg.Snapshot().All()[:2]}}
	if n := rec.SendBatch(batch, nil); n != 3 {
		t.Fatalf("batch frames %d", n)
	}

	w := httptest.NewRecorder()
	st.ServeHTTP(w, httptest.NewRequest("GET", status.Path, nil))
	var r status.Report
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ready || r.Firewall.Up || r.Firewall.Error != "table gone" || r.Capture.Up || r.Node != "node-a" {
		t.Errorf("state %+v", r)
	}
	byName := map[string]status.Peer{}
	for _, p := range r.Peers.List {
		byName[p.Name] = p
	}
	if !byName["node-b"].Reachable || byName["node-c"].Reachable || byName["node-c"].Problem != "unresolved: no MAC yet" ||
		byName["node-d"].Reachable || byName["node-d"].SendErrors != 1 || !strings.Contains(byName["node-d"].LastError, "no route") {
		t.Errorf("peers %+v", r.Peers.List)
	}
	if r.Peers.Total != 3 || r.Peers.BySource["kubernetes"] != 3 {
		t.Errorf("peers %+v", r.Peers)
	}
	if r.Counters.Relayed != 1 || r.Counters.Dropped["duplicate"] != 3 || len(r.Counters.Dropped) != 1 {
		t.Errorf("counters %+v", r.Counters)
	}
	byMTU := map[uint32]status.Relay{}
	for _, x := range r.Recent {
		byMTU[x.MTU] = x
	}
	if len(r.Recent) != 2 || byMTU[1400].Frames != 3 || byMTU[1400].Peers != 3 || byMTU[1400].Router != msg.Src ||
		byMTU[1300].Frames != 3 || byMTU[1300].Peers != 2 {
		t.Errorf("recent %+v", r.Recent)
	}
	if allocs := testing.AllocsPerRun(100, func() { rec.Send(&msg, nil, nil) }); allocs != 0 {
		t.Errorf("recording a relay allocates %v times", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { rec.SendBatch(batch, nil) }); allocs != 0 {
		t.Errorf("recording a batch allocates %v times", allocs)
	}
}
