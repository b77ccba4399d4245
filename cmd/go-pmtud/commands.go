package main

import (
	"fmt"
	"io"

	"github.com/go-pmtud/go-pmtud/internal/version"
)

// subcommand runs what is not the daemon: `version` / `--version` and
// `status`. ok is false when args are the daemon's.
func subcommand(args []string, getenv func(string) string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, version.Get())
			return 0, true
		case "status":
			return runStatus(args[1:], getenv, stdout, stderr), true
		}
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--version" || a == "-version" {
			fmt.Fprintln(stdout, version.Get())
			return 0, true
		}
	}
	return 0, false
}
