package lab

import (
	"fmt"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/testnet/proc"
)

// Transports go-pmtud offers (--transport).
var Transports = []string{"l2", "broadcast", "routed", "tunnel"}

// Scenario is one cell of the matrix.
type Scenario struct {
	Family    Family
	Fabric    Fabric
	Transport string
	Receiver  Receiver
}

func (s Scenario) String() string {
	return fmt.Sprintf("%v fabric=%s transport=%s receiver=%s", s.Family, s.Fabric, s.Transport, s.Receiver)
}

// Applicable says whether go-pmtud can be expected to work in the cell,
// and why not. Frame-level relays (l2, broadcast) address peers by MAC, so
// they cannot cross the router of the routed fabric; routed and tunnel
// address peers by IP and apply everywhere.
func (s Scenario) Applicable() (bool, string) {
	if s.Fabric == FabricRouted && (s.Transport == "l2" || s.Transport == "broadcast") {
		return false, "frames cannot cross the router between node subnets: use --transport tunnel (or routed)"
	}
	return true, ""
}

// Known limitations, measured in the lab (Linux 6.x). The cells run anyway
// and must still stall, so the table is corrected when one starts working.
const (
	limitBroadcastPod = "Linux never forwards a packet that arrived as an L2 broadcast " +
		"(ip_forward/ip6_forward drop pkt_type != PACKET_HOST), so the DNATed copy never reaches the pod: use l2 or tunnel"
	limitRoutedPod = "conntrack relates an ICMP error only if its outer destination is the quoted packet's source " +
		"(nf_conntrack_inet_error: outer daddr != inner), and routed re-addresses it to the peer, so it is not " +
		"DNATed to the pod: use tunnel (any fabric) or l2 (shared L2)"
)

// KnownLimitation says why go-pmtud cannot deliver in this cell, or "".
func (s Scenario) KnownLimitation() string {
	if s.Receiver != ReceiverPod {
		return ""
	}
	switch s.Transport {
	case "broadcast":
		return limitBroadcastPod
	case "routed":
		return limitRoutedPod
	}
	return ""
}

// Matrix lists the scenarios for the chosen families, fabrics, transports
// and receivers, in a stable order.
func Matrix(fams []Family, fabs []Fabric, transports []string, rcvs []Receiver) []Scenario {
	var out []Scenario
	for _, rcv := range rcvs {
		for _, fab := range fabs {
			for _, tr := range transports {
				for _, f := range fams {
					out = append(out, Scenario{Family: f, Fabric: fab, Transport: tr, Receiver: rcv})
				}
			}
		}
	}
	return out
}

// RunConfig tunes a scenario run.
type RunConfig struct {
	// Binary is the go-pmtud executable run on the nodes.
	Binary string
	// Args are extra go-pmtud flags.
	Args []string
	// StallTimeout: how long the download without go-pmtud is given
	// (default 3 s); it must not complete.
	StallTimeout time.Duration
	// DownloadTimeout: how long the download with go-pmtud may take
	// (default 5 s).
	DownloadTimeout time.Duration
	// FileSize of the served file (default 8 MiB).
	FileSize int
	// Progress receives one line per step (may be nil).
	Progress func(string)
	// Keep returns the lab still built; the caller must Close or Release it.
	Keep bool
	// OperatorRule runs go-pmtud with --firewall=none behind the naive rule
	// of Lab.InstallOperatorRules (no loop guard, default batching).
	OperatorRule bool
}

// Result is what one scenario measured.
type Result struct {
	Scenario
	Prefix string

	// Stall is the download without go-pmtud (it must not complete).
	Stall Download
	// StallPTBs: frag-needed / PTB the router sent during the stall;
	// StallLanded[i] how many of them node i received.
	StallPTBs   int64
	StallLanded [NumNodes]int64
	// Relayed is the same download with go-pmtud on every node.
	Relayed Download
	// PMTUBefore and PMTUAfter are the flow's PMTU toward the client where
	// the flow lives (0: no cached PMTU, the link MTU applies), before the
	// daemons start and after the relayed download.
	PMTUBefore, PMTUAfter int
	// RouterPTBs: frag-needed / PTB the router sent while go-pmtud ran.
	RouterPTBs int64
	// Frames[i], Received[i], Relays[i], SendErrors[i]: node i's go-pmtud
	// counters.
	Frames, Received, Relays, SendErrors [NumNodes]float64
	// FlowPTBsIn: PTBs received where the flow lives while go-pmtud ran
	// (relayed copies that were delivered); OwnerCtICMPErrors: ICMP errors
	// conntrack refused to relate on the owner node meanwhile.
	FlowPTBsIn, OwnerCtICMPErrors int64
	// LeftTables lists nftables tables go-pmtud left in nodes after SIGTERM.
	LeftTables []string
	// DaemonLogs holds the tail of each daemon's log (for failures).
	DaemonLogs [NumNodes]string

	// Skipped is set (with the reason) when the cell is not applicable.
	Skipped string
	// Limitation is set when the cell is known not to work (it still ran
	// and was expected to stall).
	Limitation string
	// Err is a failure to run the scenario at all; Problems lists the
	// expectations that did not hold.
	Err      error
	Problems []string
}

// FramesPerPTB is the relay's amplification: frames sent by all daemons
// per frag-needed / PTB from the router.
func (r Result) FramesPerPTB() float64 {
	var f float64
	for _, x := range r.Frames {
		f += x
	}
	if r.RouterPTBs == 0 {
		return 0
	}
	return f / float64(r.RouterPTBs)
}

// FramesTotal sums the frames every daemon sent.
func (r Result) FramesTotal() float64 {
	var f float64
	for _, x := range r.Frames {
		f += x
	}
	return f
}

// OK reports whether the scenario behaved as expected (a not applicable
// cell is OK: it is reported, not run).
func (r Result) OK() bool { return r.Skipped != "" || (r.Err == nil && len(r.Problems) == 0) }

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func ptbName(f Family) string {
	if f == IPv4 {
		return "frag-needed"
	}
	return "packet-too-big"
}

func mtuString(m int) string {
	if m == 0 {
		return "none (link MTU)"
	}
	return fmt.Sprint(m)
}

// settle waits (up to 2 s) until every daemon has decided all it received.
func settle(ds []*Daemon) ([]Metrics, bool) {
	var scrape []func() (proc.Metrics, error)
	for _, d := range ds {
		scrape = append(scrape, d.Proc.Scrape)
	}
	return proc.Settle(scrape, 100*time.Millisecond, 2*time.Second)
}

// dualHomedWhy explains an empty relay on the dual-homed fabric: the node
// the router's messages land on captured none of them.
func (l *Lab) dualHomedWhy(res *Result) string {
	if l.Opts.Fabric != FabricDual || res.Received[l.ICMPTo] != 0 {
		return ""
	}
	return fmt.Sprintf(": %s captured 0 packets though the router's %d messages landed on its second uplink %s (it does not capture there)",
		NodeName(l.ICMPTo), res.RouterPTBs, ifUplink2)
}
