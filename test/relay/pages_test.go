//go:build linux

package relay_test

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/ptb/ptbtest"
	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// rssFileKB reads a process's file-backed resident memory.
func rssFileKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no RssFile")
	return 0
}

// Once ready, the daemon unmaps its binary's pages (internal/textpages):
// its file-backed RSS falls, and the code it needs afterwards faults back
// in: relaying works on.
func TestRelaysAfterStartupPagesAreReleased(t *testing.T) {
	s := testnet.NewSegment(t, "ppg", 3, 1)
	ds := s.Start(t, binary, "l2")
	testnet.WaitFor(t, "node1 releases its start-up pages", 10*time.Second, func() bool {
		return strings.Contains(ds[0].Log(), "released start-up pages")
	})
	if kb := rssFileKB(t, ds[0].Pid()); kb > 8*1024 {
		t.Errorf("node1's RssFile is %d kB after the release, want well under the binary's size", kb)
	}
	pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(vip4),
		Client: netip.MustParseAddr("203.0.113.9"), MTU: 1400, SrcPort: 80, DstPort: 40001})
	s.Inject(t, 0, pkt, false)
	waitFor(t, "node1 relays after the release", func() bool {
		return ds[0].Metrics(t)[`gopmtud_messages_relayed_total{family="ipv4"}`] >= 1
	})
}
