package config

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Help groups the options by concern, in this order. A flag is placed by
// its exact name, else by its name's prefix (so that a new --tunnel-* or
// --capture-* option lands in its group without touching this file).
var helpGroups = []struct {
	title    string
	names    []string
	prefixes []string
}{
	{"Capture (which PTBs reach go-pmtud)", []string{"iface", "nflog-group", "firewall", "strict"}, []string{"capture-"}},
	{"Relay (what is sent, to whom, how)", []string{"peers", "nodename", "transport", "ttl", "ignore-networks", "relay-for", "ports", "dry-run"}, nil},
	{"Limits (duplicates and token buckets)", []string{"dedup-window"}, []string{"flow-", "source-", "global-"}},
	{"Kubernetes (peers from Node objects)", []string{"kubernetes", "kubeconfig", "node-address-type", "node-selector", "targeted-fanout"}, nil},
	{"Tunnel transport", nil, []string{"tunnel-"}},
	{"Observability (metrics, health, logs)", nil, []string{"metrics-", "health-", "log-", "pprof-"}},
}

const otherGroup = "Other"

// groupOf returns the help group title of a flag name.
func groupOf(name string) string {
	for _, g := range helpGroups {
		for _, n := range g.names {
			if n == name {
				return g.title
			}
		}
	}
	for _, g := range helpGroups {
		for _, p := range g.prefixes {
			if strings.HasPrefix(name, p) {
				return g.title
			}
		}
	}
	return otherGroup
}

// writeUsage prints the help: --flag form (what the README and Kubernetes
// components use), grouped, with each option's environment variable.
func writeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "Usage: go-pmtud [flags]          run the daemon\n"+
		"       go-pmtud status [flags]   ask the daemon on this node for its state\n"+
		"       go-pmtud version          print version, revision and Go version (also --version)\n"+
		"       go-pmtud lab [flags]      build a local ECMP lab in network namespaces\n\n"+
		"Every flag can also be set as PMTUD_<NAME> (e.g. PMTUD_NFLOG_GROUP=33); a flag wins over the environment.\n")
	byGroup := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byGroup[groupOf(f.Name)] = append(byGroup[groupOf(f.Name)], f) })
	titles := make([]string, 0, len(helpGroups)+1)
	for _, g := range helpGroups {
		titles = append(titles, g.title)
	}
	for _, title := range append(titles, otherGroup) {
		if len(byGroup[title]) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range byGroup[title] {
			writeFlag(w, f)
		}
	}
}

func writeFlag(w io.Writer, f *flag.Flag) {
	typ, usage := flag.UnquoteUsage(f)
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		typ = ""
		if _, tri := f.Value.(*kubeMode); tri {
			typ = "[=true|false|auto]"
		}
	}
	head := "  --" + f.Name
	if typ != "" {
		if strings.HasPrefix(typ, "[") {
			head += typ
		} else {
			head += " " + typ
		}
	}
	fmt.Fprintf(w, "%s   [%s]\n      %s", head, EnvName(f.Name), usage)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}
