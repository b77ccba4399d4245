//go:build linux

package capture

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestKernelDatagram reads what the kernel really sends for one logged PTB
// (no listener in between) and checks the parser against it. With
// PMTUD_WRITE_TESTDATA=1 it stores the datagram as testdata for
// TestParseKernelBytes, which runs without root.
func TestKernelDatagram(t *testing.T) {
	l := newLab(t)
	l.installFirewall(t)
	s, err := openNFSock(l.fdB, testGroup, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ip := ptb(netip.MustParseAddr("192.0.2.1"), vip4, 1400)
	l.send(t, ip)
	n, err := s.read()
	if err != nil || n != 1 {
		t.Fatalf("read: %d datagrams, %v", n, err)
	}
	d := bytes.Clone(s.datagram(0))
	checkKernelDatagram(t, d, ip)
	if os.Getenv("PMTUD_WRITE_TESTDATA") != "" {
		if err := os.WriteFile(filepath.Join("testdata", "nflog-ptb4.bin"), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
