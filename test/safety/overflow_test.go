//go:build linux

package safety_test

import (
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

// TestNFLOGOverflow: with a tiny receive buffer and no pre-limit, a burst
// of PTBs overruns the NFLOG socket. Capture must go on (the existing
// daemons go deaf here), count the overruns and lost messages, show them
// in /readyz's detail while staying ready, and relay the next message.
func TestNFLOGOverflow(t *testing.T) {
	p := newPair(t, "pso", "--capture-buffer", "4096", "--capture-rate", "0", "--capture-source-rate", "0")
	r4 := netip.MustParseAddr(p.s.R4[0])
	pkts := make([][]byte, 4096)
	for i := range pkts {
		c := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		pkts[i] = ip4(r4, nil, icmp4(3, 4, 1400, quote4(vip4, c, 6, tcp(443, uint16(1024+i)))))
	}
	const burst = 20000
	sent, _, took, err := p.fi.Flood(burst, 2*time.Second, func(i int) []byte { return pkts[i%len(pkts)] })
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	testnet.WaitFor(t, "overruns counted", 3*time.Second, func() bool {
		m = p.node.Metrics(t)
		return m["gopmtud_capture_overruns_total"] > 0 && m["gopmtud_capture_lost_total"] > 0
	})
	// Read once go-pmtud has decided everything NFLOG delivered.
	m = testnet.WaitSettled(t, 5*time.Second, p.node)[0]
	t.Logf("burst of %d PTBs in %v: NFLOG delivered %v, lost %v in %v overruns",
		sent, took.Round(time.Millisecond), m[received], m["gopmtud_capture_lost_total"], m["gopmtud_capture_overruns_total"])
	if m[received]+m["gopmtud_capture_lost_total"] > float64(sent) {
		t.Errorf("received %v + lost %v > sent %d", m[received], m["gopmtud_capture_lost_total"], sent)
	}
	if m["gopmtud_capture_up"] != 1 {
		t.Errorf("capture_up = %v after the overrun", m["gopmtud_capture_up"])
	}
	body, ok := p.node.Ready()
	if !ok {
		t.Fatalf("not ready after an overrun (capture goes on): %s", body)
	}
	got := regexp.MustCompile(`(\d+) lost in (\d+) buffer overruns`).FindStringSubmatch(body)
	if got == nil {
		t.Fatalf("/readyz does not show the overruns:\n%s", body)
	}
	if n, _ := strconv.Atoi(got[2]); n == 0 {
		t.Errorf("/readyz shows 0 overruns:\n%s", body)
	}
	t.Logf("/readyz:\n%s", body)
	p.relays(t, p.node, 44000)
}
