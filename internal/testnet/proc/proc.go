//go:build linux

// Package proc runs go-pmtud processes inside network namespaces for the
// root tests (internal/testnet) and the lab (internal/lab): started from a
// thread inside the namespace, their log kept, their health and metrics
// read through sockets created inside it. It does not import testing, so
// the lab command can use it.
package proc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports the daemon serves on by default (per namespace, so never shared).
const (
	MetricsPort = 30040
	HealthPort  = 4441 // config.DefaultHealthPort
)

// Do runs fn on a thread inside the daemon's namespace (netnsutil.Do or
// DoNamed bound to it).
type Do func(fn func() error) error

// Proc is one go-pmtud process in a namespace.
type Proc struct {
	Cmd         *exec.Cmd
	MetricsPort int
	HealthPort  int

	do   Do
	log  SyncBuffer
	done chan struct{}
	err  error // of Wait, valid once done is closed
	once sync.Once
}

// Start starts bin with args from a thread inside the namespace, so the
// child inherits it (no `ip netns exec`, which would need privileges the
// least-privilege test drops). attr, if not nil, is the SysProcAttr; the
// child always gets Pdeathsig SIGKILL so it never outlives its parent.
func Start(do Do, bin string, args []string, attr *syscall.SysProcAttr) (*Proc, error) {
	p := &Proc{do: do, MetricsPort: MetricsPort, HealthPort: HealthPort, done: make(chan struct{})}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--metrics-port":
			p.MetricsPort, _ = strconv.Atoi(args[i+1])
		case "--health-port":
			p.HealthPort, _ = strconv.Atoi(args[i+1])
		}
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout = &p.log
	p.Cmd.Stderr = &p.log
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Pdeathsig = syscall.SIGKILL
	p.Cmd.SysProcAttr = attr
	if err := do(p.Cmd.Start); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Log is what the process wrote so far.
func (p *Proc) Log() string { return p.log.String() }

// Args is the command line without the binary.
func (p *Proc) Args() []string { return p.Cmd.Args[1:] }

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Err is the process's Wait error once it has exited.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to end and returns its exit
// code, or -1 and false if it is still running.
func (p *Proc) Wait(timeout time.Duration) (code int, exited bool) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, false
	}
	return p.Cmd.ProcessState.ExitCode(), true
}

// Kill kills the process and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to grace, then SIGKILL. It returns an
// error if the process had to be killed or did not exit cleanly. Only the
// first call does anything.
func (p *Proc) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		if p.Exited() {
			if p.err != nil {
				err = fmt.Errorf("go-pmtud had exited: %w", p.err)
			}
			return
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				err = fmt.Errorf("go-pmtud exit after SIGTERM: %w", p.err)
			}
		case <-time.After(grace):
			p.Kill()
			err = fmt.Errorf("go-pmtud ignored SIGTERM for %v, killed", grace)
		}
	})
	return err
}

// Get does an HTTP GET on 127.0.0.1:port inside the process's namespace
// and returns the body; a status other than 200 is an error (with the body).
func (p *Proc) Get(path string, port int) (string, error) { return Get(p.do, path, port) }

// Ready returns /readyz's body and whether it answered 200.
func (p *Proc) Ready() (string, bool) {
	body, err := p.Get("/readyz", p.HealthPort)
	return body, err == nil
}

// WaitReady polls /readyz until it answers 200, the process exits, ctx
// ends or timeout passes.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		body, err := p.Get("/readyz", p.HealthPort)
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("go-pmtud exited (%v) before it was ready; log:\n%s", p.err, Tail(p.Log(), 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("go-pmtud not ready within %v (last: %v %s); log:\n%s", timeout, err, strings.TrimSpace(body), Tail(p.Log(), 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Scrape reads the process's gopmtud_* metrics.
func (p *Proc) Scrape() (Metrics, error) {
	body, err := p.Get("/metrics", p.MetricsPort)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	return ParseMetrics(strings.NewReader(body))
}

// Get does an HTTP GET on 127.0.0.1:port from a socket created inside the
// namespace do enters (an http.Client would dial from another thread, in
// the root namespace).
func Get(do Do, path string, port int) (string, error) {
	var conn net.Conn
	err := do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %d %s", path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return string(body), nil
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// SyncBuffer is a bytes.Buffer safe for os/exec's copying goroutine and
// readers at the same time, capped so a log flood cannot eat the machine.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
