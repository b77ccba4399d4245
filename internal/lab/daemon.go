package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

// Ports go-pmtud listens on inside each node (its defaults).
const (
	MetricsPort = 30040
	HealthPort  = 30041
)

// DaemonConfig says how to run go-pmtud on the nodes.
type DaemonConfig struct {
	// Binary is the go-pmtud executable.
	Binary string
	// Transport is --transport: l2, broadcast, routed or tunnel.
	Transport string
	// Firewall is --firewall (default nftables: go-pmtud owns its rule).
	Firewall string
	// Args are extra flags appended to the lab's own.
	Args []string
	// ReadyTimeout bounds the wait for /readyz (default 10 s).
	ReadyTimeout time.Duration
}

// Daemon is one go-pmtud process running inside a node namespace.
type Daemon struct {
	Node int
	ns   *NS
	cmd  *exec.Cmd
	log  syncBuffer
	done chan struct{}
	err  error // of Wait, valid after done is closed
	once sync.Once
}

// syncBuffer is a bytes.Buffer safe for the copying goroutine of os/exec
// and readers at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 { // a log flood must not eat the machine
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Log is what the daemon wrote to stderr and stdout so far.
func (d *Daemon) Log() string { return d.log.String() }

// Args is the daemon's command line (without the binary).
func (d *Daemon) Args() []string { return d.cmd.Args[1:] }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// DaemonArgs is the command line the lab gives go-pmtud on node i.
func (l *Lab) DaemonArgs(i int, c DaemonConfig) []string {
	fw := c.Firewall
	if fw == "" {
		fw = "nftables"
	}
	var peers []string
	for _, p := range l.Peers(i) {
		peers = append(peers, p.String())
	}
	args := []string{
		"--iface", ifUplink,
		"--peers", strings.Join(peers, ","),
		"--nodename", NodeName(i),
		"--transport", c.Transport,
		"--ttl", "64",
		"--nflog-group", "33",
		"--metrics-port", strconv.Itoa(MetricsPort),
		"--health-port", strconv.Itoa(HealthPort),
		"--firewall", fw,
		"--log-format", "json",
		// Static peers only: the lab has no API server, whatever the
		// environment says.
		"--kubernetes", "false",
	}
	if c.Transport == "tunnel" {
		args = append(args, l.tunnelKeyArgs()...)
	}
	return append(args, c.Args...)
}

// StartDaemons runs go-pmtud on every node and waits until each reports
// ready. On failure the daemons already started are stopped.
func (l *Lab) StartDaemons(ctx context.Context, c DaemonConfig) ([]*Daemon, error) {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	var ds []*Daemon
	for i, n := range l.Nodes {
		d, err := startDaemon(n, i, c.Binary, l.DaemonArgs(i, c))
		if err != nil {
			l.stopDaemons(ds)
			return nil, err
		}
		ds = append(ds, d)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.stopDaemons(ds)
		return nil, errors.New("lab closed")
	}
	l.daemons = append(l.daemons, ds...)
	l.mu.Unlock()
	for _, d := range ds {
		if err := d.waitReady(ctx, c.ReadyTimeout); err != nil {
			l.StopDaemons()
			return nil, err
		}
	}
	return ds, nil
}

// StopDaemons stops every daemon of the lab (SIGTERM, SIGKILL after 5 s).
func (l *Lab) StopDaemons() error {
	l.mu.Lock()
	ds := l.daemons
	l.daemons = nil
	l.mu.Unlock()
	return l.stopDaemons(ds)
}

func (l *Lab) stopDaemons(ds []*Daemon) error {
	var errs []error
	for _, d := range ds {
		if err := d.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startDaemon forks the binary from a thread inside the node's namespace:
// the child inherits the namespace of the thread that forks it.
func startDaemon(n *NS, i int, bin string, args []string) (*Daemon, error) {
	d := &Daemon{Node: i, ns: n, done: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout = &d.log
	d.cmd.Stderr = &d.log
	// Die with the lab if it is killed, rather than linger in a namespace.
	// (Strictly: with the forking thread, which the runtime keeps unless
	// NS.Do failed to switch it back; then startDaemon reports that error
	// and the child dies with the discarded thread.)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.Do(d.cmd.Start); err != nil {
		return nil, fmt.Errorf("start go-pmtud in %s: %w", n.Name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// Stop sends SIGTERM and waits, then SIGKILL after 5 s. It returns an error
// if the daemon had to be killed or did not exit cleanly.
func (d *Daemon) Stop() error {
	var err error
	d.once.Do(func() {
		if d.Exited() {
			if d.err != nil {
				err = fmt.Errorf("%s: go-pmtud had exited: %w", NodeName(d.Node), d.err)
			}
			return
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
			if d.err != nil {
				err = fmt.Errorf("%s: go-pmtud exit after SIGTERM: %w", NodeName(d.Node), d.err)
			}
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			err = fmt.Errorf("%s: go-pmtud ignored SIGTERM for 5 s, killed", NodeName(d.Node))
		}
	})
	return err
}

// httpIn is an HTTP client whose sockets are created in n.
func httpIn(n *NS, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return n.DialContext(ctx, network, addr, nil)
			},
			DisableKeepAlives: true,
		},
	}
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := httpIn(d.ns, time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", HealthPort)
	var last string
	for {
		if d.Exited() {
			return fmt.Errorf("%s: go-pmtud exited before ready (%v); log:\n%s", NodeName(d.Node), d.err, tail(d.Log(), 20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: go-pmtud not ready within %v (last: %s); log:\n%s", NodeName(d.Node), timeout, last, tail(d.Log(), 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Metrics is one scrape of a daemon's /metrics: sample name with labels as
// written (e.g. `gopmtud_frames_sent_total{transport="l2"}`) to value.
type Metrics map[string]float64

// Sum adds every sample of the metric name, whatever its labels.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// Scrape reads the daemon's metrics, from a socket inside its node.
func (d *Daemon) Scrape(ctx context.Context) (Metrics, error) {
	c := httpIn(d.ns, 2*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", MetricsPort), nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: scrape: %w", NodeName(d.Node), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: scrape: %s", NodeName(d.Node), resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 8<<20))
}

// parseMetrics reads the Prometheus text format, enough for counters and
// gauges: "name{labels} value [timestamp]".
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the label braces.
		end := strings.LastIndexByte(line, '}')
		rest := line
		name := ""
		if end >= 0 {
			name, rest = line[:end+1], line[end+1:]
		} else if sp := strings.IndexByte(line, ' '); sp > 0 {
			name, rest = line[:sp], line[sp:]
		}
		fields := strings.Fields(rest)
		if name == "" || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[name] = v
	}
	return m, sc.Err()
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
