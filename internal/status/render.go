package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// MaxPeerLines is how many reachable peers Render lists unless verbose:
// at thousands of nodes the problems matter, not the list.
const MaxPeerLines = 10

// Render writes r as text, in the manner of `cilium status`.
func Render(w io.Writer, r Report, verbose bool) {
	line := func(k, f string, a ...any) { fmt.Fprintf(w, "%-12s %s\n", k+":", fmt.Sprintf(f, a...)) }
	line("Version", "%s (revision %s, %s)", r.Version.Version, short(r.Version.Revision), r.Version.GoVersion)
	if r.Node != "" {
		line("Node", "%s", r.Node)
	}
	line("Uptime", "%s (since %s)", r.Now.Sub(r.Started).Round(time.Second), r.Started.UTC().Format(time.RFC3339))
	line("Transport", "%s", r.Transport)
	line("Ready", "%s", okText(r.Ready, "yes", "NO"))
	for _, c := range r.Checks {
		detail := ""
		if c.Detail != "" {
			detail = ": " + c.Detail
		}
		fmt.Fprintf(w, "  [%s] %s%s\n", okText(c.OK, "+", "-"), c.Name, detail)
	}
	c := r.Capture
	line("Capture", "%s  nflog group %d: %d received, %d lost in %d overruns, %d restarts",
		okText(c.Up, "up", "DOWN"), c.Group, c.Received, c.Lost, c.Overruns, c.Restarts)
	fw := okText(r.Firewall.Up, "installed", "MISSING")
	if r.Firewall.Mode == "none" {
		fw = "left to the operator (--firewall=none)"
	}
	if r.Firewall.Error != "" {
		fw += ": " + r.Firewall.Error
	}
	line("Rule", "%s", fw)
	renderPeers(w, line, r.Peers, verbose)
	k := r.Counters
	line("Counters", "%d received, %d relayed, %d frames sent, %d send errors", k.Received, k.Relayed, k.FramesSent, k.SendErrors)
	reasons := make([]string, 0, len(k.Dropped))
	for reason := range k.Dropped {
		reasons = append(reasons, reason)
	}
	slices.Sort(reasons)
	for _, reason := range reasons {
		fmt.Fprintf(w, "  dropped %-22s %d\n", reason, k.Dropped[reason])
	}
	if len(r.Recent) == 0 {
		line("Last relays", "none since start")
		return
	}
	line("Last relays", "%d, newest first", len(r.Recent))
	for _, e := range r.Recent {
		fmt.Fprintf(w, "  %s  IPv%d router %s -> %s mtu %d, flow to %s, %d peers, %d frames (%s ago)\n",
			e.At.UTC().Format("15:04:05.000"), e.Family, e.Router, e.Dst, e.MTU, e.Client, e.Peers, e.Frames,
			r.Now.Sub(e.At).Round(time.Millisecond))
	}
}

func renderPeers(w io.Writer, line func(string, string, ...any), p Peers, verbose bool) {
	sources := make([]string, 0, len(p.BySource))
	for s, n := range p.BySource {
		sources = append(sources, fmt.Sprintf("%s %d", s, n))
	}
	slices.Sort(sources)
	unreachable := 0
	for _, e := range p.List {
		if !e.Reachable {
			unreachable++
		}
	}
	line("Peers", "%d (%s), %d unreachable", p.Total, strings.Join(sources, ", "), unreachable)
	shown := 0
	for _, e := range p.List {
		if e.Reachable && !verbose && shown >= MaxPeerLines {
			continue
		}
		name := e.Name
		if name == "" {
			name = "-"
		}
		state := "reachable"
		if !e.Reachable {
			state = "UNREACHABLE: " + e.Problem
		}
		errs := ""
		if e.SendErrors > 0 {
			errs = fmt.Sprintf(", %d send errors, last: %s", e.SendErrors, e.LastError)
		}
		fmt.Fprintf(w, "  %-24s %-40s %s%s\n", name, e.Addr, state, errs)
		if e.Reachable {
			shown++
		}
	}
	if hidden := len(p.List) - unreachable - shown; hidden > 0 {
		fmt.Fprintf(w, "  ... %d more reachable peers (--verbose lists them)\n", hidden)
	}
}

func okText(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
