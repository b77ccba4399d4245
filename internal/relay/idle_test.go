package relay

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/drop"
	"github.com/go-pmtud/go-pmtud/internal/metrics"
	"github.com/go-pmtud/go-pmtud/internal/peers"
	"github.com/go-pmtud/go-pmtud/internal/policy"
	"github.com/go-pmtud/go-pmtud/internal/ptb"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
)

// After a burst of distinct flows, Idle calls a second apart give the
// tables' memory back, then the heap (GaveBack) once, log it once, and
// stop asking to be called; a quiet period with nothing grown does
// neither.
func TestIdleGivesBackWhatABurstGrew(t *testing.T) {
	pc := policy.DefaultConfig()
	pc.SourceRate, pc.SourceBurst, pc.GlobalRate, pc.GlobalBurst = 1e9, 1e9, 1e9, 1e9
	pc.GlobalFrameRate, pc.GlobalFrameBurst = 1e12, 1e9
	eng, err := policy.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	gaveBack := 0
	r := New(Config{Limits: ptb.DefaultLimits(), Engine: eng, Sender: &fakeSender{}, Metrics: metrics.New("fake"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), GaveBack: func() { gaveBack++ }})
	r.SetView(policy.NewView([]netip.Addr{self, vip}, nil, peers.NewSet([]peers.Peer{peers.PeerAt(peerA)}), nil))
	first := eng.TableBytes()
	now := time.Now()
	for i := range 20_000 {
		now = now.Add(5 * time.Microsecond)
		b := ptbtest.Build(ptbtest.Spec{Router: router, VIP: vip, MTU: 1400, SrcPort: 80, DstPort: uint16(i),
			Client: netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})})
		p := pkt(b, [6]byte{2, 0, 0, 0, 0, 9})
		p.Received = now
		if got := r.Handle(p); got != drop.None {
			t.Fatalf("message %d: %v", i, got)
		}
	}
	grown := eng.TableBytes()
	if grown < 10*first {
		t.Fatalf("tables of %d bytes after the burst, %d before: the burst grew nothing", grown, first)
	}
	calls := 0
	for more := true; more; calls++ {
		if calls == 10 {
			t.Fatal("Idle still has more to do after 10 seconds")
		}
		now = now.Add(time.Second)
		more = r.Idle(now)
	}
	if got := eng.TableBytes(); got != first {
		t.Errorf("tables of %d bytes after Idle, want the first %d", got, first)
	}
	if n := strings.Count(logs.String(), "gave back policy table memory"); gaveBack != 1 || n != 1 {
		t.Errorf("GaveBack called %d times, logged %d times, want once each", gaveBack, n)
	}
	if r.Idle(now.Add(time.Second)) || gaveBack != 1 {
		t.Errorf("a quiet period with nothing grown: more to do, or GaveBack called (%d)", gaveBack)
	}
}
