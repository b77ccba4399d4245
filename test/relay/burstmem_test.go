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

// After a burst of distinct flows, once capture has been quiet, the daemon
// gives back the memory the burst grew (policy tables, then the heap): it
// says so, its anonymous RSS falls, and it relays on.
func TestMemoryGrownByABurstIsGivenBack(t *testing.T) {
	s := testnet.NewSegment(t, "pbm", 3, 1)
	ds := s.Start(t, binary, "l2", "--capture-rate", "0", "--capture-source-rate", "0",
		"--source-rate", "1000000", "--source-burst", "1000000", "--global-rate", "1000000", "--global-burst", "1000000",
		"--global-frame-rate", "2000000", "--global-frame-burst", "2000000", "--capture-buffer", "16777216")
	fi := s.NewFrameInjector(t, 0, 0)
	const burst = 30_000
	for i := range burst {
		pkt := ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(vip4),
			Client: netip.AddrFrom4([4]byte{203, 1, byte(i >> 8), byte(i)}), MTU: 1400, SrcPort: 80, DstPort: uint16(i)})
		if err := fi.Send(pkt); err != nil {
			t.Fatal(err)
		}
	}
	relayed := func() float64 { return ds[0].Metrics(t)[`gopmtud_messages_relayed_total{family="ipv4"}`] }
	waitFor(t, "node1 relays most of the burst", func() bool { return relayed() >= burst/2 })
	during, err := benchrate.Memory(ds[0].Pid())
	if err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, "node1 gives back the burst's memory", 10*time.Second, func() bool {
		return strings.Contains(ds[0].Log(), "gave back policy table memory")
	})
	after, err := benchrate.Memory(ds[0].Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node1 anonymous RSS: %d kB after the burst, %d kB once given back", during.Anon>>10, after.Anon>>10)
	if after.Anon >= during.Anon {
		t.Errorf("anonymous RSS did not fall: %d kB after the burst, %d kB once given back", during.Anon>>10, after.Anon>>10)
	}
	before := relayed()
	s.Inject(t, 0, ptbtest.Build(ptbtest.Spec{Router: netip.MustParseAddr("10.77.0.254"), VIP: netip.MustParseAddr(vip4),
		Client: netip.MustParseAddr("203.0.113.9"), MTU: 1400, SrcPort: 80, DstPort: 40001}), false)
	waitFor(t, "node1 relays after giving memory back", func() bool { return relayed() > before })
}
