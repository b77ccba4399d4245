//go:build linux

// Package safety_test runs real go-pmtud processes in network namespaces and
// attacks them: hostile messages through the real NFLOG path, a flood, and
// faults (a dead peer, a vanishing uplink, a busy NFLOG group, signals, a
// second instance, dropped capabilities). Each test is bounded in time and
// packet count and removes what it created, also when it fails.
package safety_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/testnet"
)

var pmtud string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("skipping safety tests: they need root (network namespaces, NFLOG, nftables, raw sockets)")
		os.Exit(0)
	}
	bin, cleanup, err := testnet.BuildDaemon()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	pmtud = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}
