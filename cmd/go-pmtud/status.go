package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/status"
)

// runStatus is `go-pmtud status`: it asks the daemon on this node (its
// metrics listener, found from the same PMTUD_METRICS_* variables the
// daemon's container has) and prints its state. Exit 0 when the daemon is
// ready, 1 when it is not or cannot be reached, 2 on bad flags.
func runStatus(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("go-pmtud status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := 30040
	if p, err := strconv.Atoi(getenv("PMTUD_METRICS_PORT")); err == nil {
		port = p
	}
	address := fs.String("address", status.LocalHost(getenv("PMTUD_METRICS_ADDRESS")), "address of the daemon's metrics listener (default: $PMTUD_METRICS_ADDRESS, else loopback)")
	fs.IntVar(&port, "port", port, "port of the daemon's metrics listener (default: $PMTUD_METRICS_PORT, else 30040)")
	asJSON := fs.Bool("json", false, "print the daemon's report as JSON")
	verbose := fs.Bool("verbose", false, "list every peer, not only the unreachable ones and the first few")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the daemon")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "Usage: go-pmtud status [--address A] [--port P] [--json] [--verbose] [--timeout D]")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "go-pmtud status: %v\n", err)
		return 2
	}
	r, err := status.Fetch(context.Background(), *address, port, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "go-pmtud status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		status.Render(stdout, r, *verbose)
	}
	if !r.Ready {
		return 1
	}
	return 0
}
