package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/lab"
)

// runLab is `go-pmtud lab`: it builds the ECMP namespace lab, shows a
// download stalling without go-pmtud and completing with it, and removes
// everything again. It returns the process exit code: 0 only if every
// chosen scenario behaved as expected.
func runLab(args []string) int {
	return labMain(args, os.Stdout, os.Stderr)
}

func labMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("go-pmtud lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	family := fs.String("family", "both", "IP family: 4, 6 or both")
	fabric := fs.String("fabric", "both", "node fabric: l2 (one bridge), routed (a subnet per node), dual (dual-homed: two segments, ICMP on the second uplink), both (l2 and routed) or all")
	transport := fs.String("transport", "auto", "go-pmtud --transport: l2, broadcast, routed, tunnel, all, or auto (routed on the routed fabric, l2 on the others)")
	receiver := fs.String("receiver", "node", "where the HTTP server lives: node (socket on the node), pod (DNAT to a pod behind it) or both")
	keep := fs.Bool("keep", false, "leave the lab's namespaces up after the run and print how to look around and remove them")
	teardown := fs.String("teardown", "", "remove the lab with this namespace prefix (as printed by -keep) and exit")
	binary := fs.String("binary", "", "go-pmtud binary to run on the nodes (default: this executable)")
	stall := fs.Duration("stall", 3*time.Second, "how long the download without go-pmtud is given (it must not complete)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long the download with go-pmtud may take")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go-pmtud lab [flags]\n\n"+
			"Builds a router doing ECMP toward a Service VIP on three nodes, in network namespaces,\n"+
			"with the router's ICMP errors landing on a node that does not own the flow. Shows an\n"+
			"HTTP download stalling without go-pmtud and completing with it. Needs root.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "go-pmtud lab: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "go-pmtud lab: needs root (it creates network namespaces); try: sudo go-pmtud lab")
		return 2
	}
	if *teardown != "" {
		if err := lab.Teardown(*teardown); err != nil {
			fmt.Fprintf(stderr, "go-pmtud lab: teardown %s: %v\n", *teardown, err)
			return 1
		}
		if left, _ := lab.ListNamespaces(*teardown); len(left) > 0 {
			fmt.Fprintf(stderr, "go-pmtud lab: still there: %v\n", left)
			return 1
		}
		fmt.Fprintf(stdout, "lab %s removed\n", *teardown)
		return 0
	}

	scs, err := chooseScenarios(*family, *fabric, *transport, *receiver)
	if err != nil {
		fmt.Fprintf(stderr, "go-pmtud lab: %v\n", err)
		return 2
	}
	return runScenarios(scs, *binary, *stall, *timeout, *keep, stdout, stderr)
}

// chooseScenarios turns the flags into the list of matrix cells to run.
func chooseScenarios(family, fabric, transport, receiver string) ([]lab.Scenario, error) {
	fams, err := pickFamilies(family)
	if err != nil {
		return nil, err
	}
	fabs, err := pickFabrics(fabric)
	if err != nil {
		return nil, err
	}
	rcvs, err := pickReceivers(receiver)
	if err != nil {
		return nil, err
	}
	var out []lab.Scenario
	for _, fab := range fabs {
		var trs []string
		switch transport {
		case "auto":
			trs = []string{"l2"}
			if fab == lab.FabricRouted {
				trs = []string{"routed"}
			}
		case "all":
			trs = lab.Transports
		case "l2", "broadcast", "routed", "tunnel":
			trs = []string{transport}
		default:
			return nil, fmt.Errorf("-transport %q: want l2, broadcast, routed, tunnel, all or auto", transport)
		}
		out = append(out, lab.Matrix(fams, []lab.Fabric{fab}, trs, rcvs)...)
	}
	return out, nil
}

func runScenarios(scs []lab.Scenario, binary string, stall, timeout time.Duration, keep bool, stdout, stderr io.Writer) int {
	bin := binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			fmt.Fprintf(stderr, "go-pmtud lab: cannot find my own executable: %v (use -binary)\n", err)
			return 1
		}
	}
	// Ctrl-C cancels the run; the deferred teardown in lab.Run still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []lab.Result
	var kept []*lab.Lab
	for i, sc := range scs {
		fmt.Fprintf(stdout, "\n[%d/%d] %s\n", i+1, len(scs), sc)
		res, l := lab.Run(ctx, sc, lab.RunConfig{
			Binary:          bin,
			StallTimeout:    stall,
			DownloadTimeout: timeout,
			Keep:            keep,
			Progress:        func(s string) { fmt.Fprintf(stdout, "  - %s\n", s) },
		})
		results = append(results, res)
		if l != nil {
			kept = append(kept, l)
		}
		switch {
		case res.Skipped != "":
			fmt.Fprintf(stdout, "  - not applicable: %s\n", res.Skipped)
		case res.Err != nil:
			fmt.Fprintf(stdout, "  ! error: %v\n", res.Err)
		case !res.OK():
			for _, p := range res.Problems {
				fmt.Fprintf(stdout, "  ! %s\n", p)
			}
			for n, lg := range res.DaemonLogs {
				if lg != "" {
					fmt.Fprintf(stdout, "  go-pmtud log of %s (last lines):\n%s\n", lab.NodeName(n), indent(lg, "    "))
				}
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintln(stdout, "\ninterrupted")
			break
		}
	}

	fmt.Fprintln(stdout, "\nSummary (download of the 8 MiB file from the VIP; PMTU where the flow lives; frames go-pmtud sent per router message):")
	lab.WriteSummary(stdout, results)

	for _, l := range kept {
		if err := l.Release(); err != nil {
			fmt.Fprintf(stdout, "warning: %v\n", err)
		}
		fmt.Fprintf(stdout, "\n%s", lab.ExploreHelp(l.Prefix, l.Opts.Fabric, bin))
	}
	if len(kept) == 0 {
		fmt.Fprintln(stdout, "\nteardown: every lab namespace removed")
	}

	if ctx.Err() != nil {
		return 130
	}
	for _, r := range results {
		if !r.OK() {
			return 1
		}
	}
	return 0
}

func pickFamilies(s string) ([]lab.Family, error) {
	switch s {
	case "4":
		return []lab.Family{lab.IPv4}, nil
	case "6":
		return []lab.Family{lab.IPv6}, nil
	case "both":
		return []lab.Family{lab.IPv4, lab.IPv6}, nil
	}
	return nil, fmt.Errorf("-family %q: want 4, 6 or both", s)
}

func pickFabrics(s string) ([]lab.Fabric, error) {
	switch s {
	case "l2":
		return []lab.Fabric{lab.FabricL2}, nil
	case "routed":
		return []lab.Fabric{lab.FabricRouted}, nil
	case "dual":
		return []lab.Fabric{lab.FabricDual}, nil
	case "both":
		return []lab.Fabric{lab.FabricL2, lab.FabricRouted}, nil
	case "all":
		return []lab.Fabric{lab.FabricL2, lab.FabricRouted, lab.FabricDual}, nil
	}
	return nil, fmt.Errorf("-fabric %q: want l2, routed, dual, both or all", s)
}

func pickReceivers(s string) ([]lab.Receiver, error) {
	switch s {
	case "node":
		return []lab.Receiver{lab.ReceiverNode}, nil
	case "pod":
		return []lab.Receiver{lab.ReceiverPod}, nil
	case "both":
		return []lab.Receiver{lab.ReceiverNode, lab.ReceiverPod}, nil
	}
	return nil, fmt.Errorf("-receiver %q: want node, pod or both", s)
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}
