//go:build linux

package relay_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/benchrate"
	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// Once ready, the daemon unmaps its binary's pages (internal/textpages):
// its file-backed RSS falls, and the code it needs afterwards faults back
// in: relaying works on.
func TestRelaysAfterStartupPagesAreReleased(t *testing.T) {
	s := testnet.NewSegment(t, "ppg", 3, 1)
	ds := s.Start(t, binary, "l2")
	testnet.WaitFor(t, "node1 releases its start-up pages", 10*time.Second, func() bool {
		return strings.Contains(ds[0].Log(), "released start-up pages")
	})
	m, err := benchrate.Memory(ds[0].Pid())
	if err != nil {
		t.Fatal(err)
	}
	if m.File > 8<<20 {
		t.Errorf("node1's RssFile is %d kB after the release, want well under the binary's size", m.File>>10)
	}
	pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(vip4),
		Client: netip.MustParseAddr("203.0.113.9"), MTU: 1400, SrcPort: 80, DstPort: 40001})
	s.Inject(t, 0, pkt, false)
	waitFor(t, "node1 relays after the release", func() bool {
		return ds[0].Metrics(t)[`gopmtud_messages_relayed_total{family="ipv4"}`] >= 1
	})
}
