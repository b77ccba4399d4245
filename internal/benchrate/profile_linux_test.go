//go:build linux

package benchrate_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/netnsutil"
)

const pprofPort = 6060

// TestRateProfile takes CPU profiles of the daemon while the generator
// runs, one per rate, into the directory PMTUD_BENCH_PROFILE (limits raised;
// go tool pprof reads them). Also a heap profile at the end.
func TestRateProfile(t *testing.T) {
	dir := os.Getenv("PMTUD_BENCH_PROFILE")
	if dir == "" {
		t.Skip("set PMTUD_BENCH_PROFILE=dir to profile the daemon under load")
	}
	// PMTUD_BENCH_PROFILE_DEFAULTS=1 profiles the default limits instead.
	args := raised
	if os.Getenv("PMTUD_BENCH_PROFILE_DEFAULTS") != "" {
		args = nil
	}
	r := newRig(t, bin, append(args, "--pprof-address", fmt.Sprintf("127.0.0.1:%d", pprofPort))...)
	for _, rate := range []float64{200, 20000} {
		got := make(chan error, 1)
		go func() {
			got <- fetch(r.s.Nodes[0], "/debug/pprof/profile?seconds=5", filepath.Join(dir, fmt.Sprintf("cpu-%.0f.pprof", rate)), 10*time.Second)
		}()
		x := r.run(t, rate, 6*time.Second, false)
		t.Log(x)
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	for file, path := range map[string]string{"heap.pprof": "/debug/pprof/heap", "heap.txt": "/debug/pprof/heap?debug=1"} {
		if err := fetch(r.s.Nodes[0], path, filepath.Join(dir, file), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// fetch GETs path from the pprof listener inside namespace ns into file.
func fetch(ns, path, file string, timeout time.Duration) error {
	var conn net.Conn
	err := netnsutil.DoNamed(ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pprofPort), time.Second)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
