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

// TestMain builds the daemon once. Without root it fails when the root
// tests are required (CI, make test) and otherwise lets every test skip
// itself, with its reason, in testnet.NewSegment.
func TestMain(m *testing.M) {
	if code := testnet.MainCheck("test/safety"); code != 0 {
		os.Exit(code)
	}
	if testnet.NoRootReason() != "" {
		os.Exit(m.Run())
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
