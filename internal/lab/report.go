package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints one line per scenario: the stall without go-pmtud,
// the download with it, the PMTU where the flow lives, and the relay's
// amplification.
func WriteSummary(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tFABRIC\tTRANSPORT\tRECEIVER\tWITHOUT GO-PMTUD\tWITH GO-PMTUD\tPMTU BEFORE->AFTER\tROUTER MSGS\tFRAMES/MSG\tRESULT")
	for _, r := range rs {
		row := []string{r.Family.String(), string(r.Fabric), r.Transport, string(r.Receiver)}
		switch {
		case r.Skipped != "":
			row = append(row, "-", "-", "-", "-", "-", "n/a: "+r.Skipped)
		case r.Err != nil:
			row = append(row, dl(r.Stall), "-", "-", "-", "-", "ERROR: "+firstLine(r.Err.Error()))
		default:
			res := "ok"
			if r.Limitation != "" {
				res = "ok: stalls as documented (known limitation)"
			}
			if !r.OK() {
				res = "FAIL: " + firstLine(r.Problems[0])
			}
			row = append(row, dl(r.Stall), dl(r.Relayed),
				fmt.Sprintf("%s -> %s", short(r.PMTUBefore), short(r.PMTUAfter)),
				fmt.Sprint(r.RouterPTBs), fmt.Sprintf("%.2f", r.FramesPerPTB()), res)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
}

func dl(d Download) string {
	if d.Want == 0 {
		return "-"
	}
	if d.Complete {
		return fmt.Sprintf("complete in %.3f s", d.Elapsed.Seconds())
	}
	return fmt.Sprintf("stalled: %d B in %.1f s", d.Bytes, d.Elapsed.Seconds())
}

func short(m int) string {
	if m == 0 {
		return "none"
	}
	return fmt.Sprint(m)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 90 {
		s = s[:87] + "..."
	}
	return s
}

// ExploreHelp is what -keep prints: commands to look around a kept lab and
// to remove it. bin is how to invoke go-pmtud.
func ExploreHelp(prefix string, fab Fabric, bin string) string {
	p4, p6 := planFor(IPv4), planFor(IPv6)
	var b strings.Builder
	fmt.Fprintf(&b, "The lab %s is still up (its HTTP servers and go-pmtud daemons ended with this command).\n", prefix)
	fmt.Fprintf(&b, "Look around:\n")
	fmt.Fprintf(&b, "  ip netns list | grep %s\n", prefix)
	fmt.Fprintf(&b, "  ip netns exec %s-router ip rule; ip netns exec %s-router ip route show %s\n", prefix, prefix, p4.vip)
	fmt.Fprintf(&b, "  ip netns exec %s-router ip route show table %d; ip netns exec %s-router ip route show table %d\n", prefix, tableTCP, prefix, tableICMP)
	fmt.Fprintf(&b, "  ip netns exec %s-node1 ip route get %s      # the owner's PMTU cache toward the client\n", prefix, p4.clients[0])
	fmt.Fprintf(&b, "  ip netns exec %s-node1 ip -6 route get %s\n", prefix, p6.clients[0])
	fmt.Fprintf(&b, "  ip netns exec %s-node1 ip addr show lo             # the VIP, on every node\n", prefix)
	fmt.Fprintf(&b, "  ip netns exec %s-router ip link show wan0          # the narrow hop (mtu %d)\n", prefix, mtuNarrow)
	l := &Lab{Opts: Options{Fabric: fab}}
	fmt.Fprintf(&b, "Run go-pmtud by hand on node2 (Ctrl-C to stop):\n  ip netns exec %s-node2 %s %s\n",
		prefix, bin, strings.Join(l.DaemonArgs(1, DaemonConfig{Transport: defaultTransport(fab)}), " "))
	fmt.Fprintf(&b, "Remove it:\n  %s lab -teardown %s\n", bin, prefix)
	return b.String()
}

func defaultTransport(f Fabric) string {
	if f == FabricRouted {
		return "routed"
	}
	return "l2"
}
