// Command go-pmtud keeps Path MTU Discovery working behind ECMP: it relays the
// ICMP "fragmentation needed" / "packet too big" messages that land on one node
// to every other node, so that the node owning the flow learns the smaller MTU.
//
//	go-pmtud [flags]        run the daemon (see --help; every flag also as PMTUD_<NAME>)
//	go-pmtud status         ask the daemon on this node for its state
//	go-pmtud version        print version, revision and Go version (also --version)
//	go-pmtud lab [flags]    build a local ECMP lab in network namespaces and show it working
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-pmtud/go-pmtud/internal/config"
	"github.com/go-pmtud/go-pmtud/internal/daemon"
	"github.com/go-pmtud/go-pmtud/internal/memlimit"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "lab" {
		os.Exit(runLab(os.Args[2:]))
	}
	if code, ok := subcommand(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := config.Parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "go-pmtud: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if soft := memlimit.Apply(getenv, os.DirFS("/")); soft > 0 {
		log.Info("soft memory limit from the cgroup's", "bytes", soft, "fraction", memlimit.Fraction)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("go-pmtud failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
