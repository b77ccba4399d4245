// Command testsummary shortens `go test -json` output for `make test`: it
// prints every skipped test with its reason, every failed test with its
// output, each package's counts, and go test's own closing ok / FAIL lines.
// Passing tests' logs are dropped. It exits 1 if anything failed.
//
//	go test -json ./... 2>&1 | go run ./internal/testnet/testsummary
package main

import (
	"flag"
	"os"
)

func main() {
	verbose := flag.Bool("v", false, "print every output line, as go test -v does")
	flag.Parse()
	if failed := summarize(os.Stdin, os.Stdout, *verbose); failed {
		os.Exit(1)
	}
}
