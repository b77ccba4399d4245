package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// FilePath is the URL path of the large file every server offers.
const FilePath = "/file"

// startServers serves the file on port 80 in each node (or in each pod),
// from a listening socket created inside that namespace.
func (l *Lab) startServers() error {
	l.file = make([]byte, l.Opts.FileSize)
	for i := range l.file {
		l.file[i] = byte(i*7 + i>>12) // not compressible by anyone in between
	}
	where := l.Nodes[:]
	if l.Opts.Receiver == ReceiverPod {
		where = l.Pods[:]
	}
	for i, n := range where {
		ln, err := n.Listen("tcp", ":80")
		if err != nil {
			return fmt.Errorf("%s: listen :80: %w", n.Name, err)
		}
		name := NodeName(i)
		mux := http.NewServeMux()
		mux.HandleFunc(FilePath, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", name)
			http.ServeContent(w, r, "file", time.Time{}, bytes.NewReader(l.file))
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		l.mu.Lock()
		l.servers = append(l.servers, srv)
		l.mu.Unlock()
		go func() { _ = srv.Serve(ln) }()
	}
	return nil
}

// Download is the outcome of one HTTP GET of the file.
type Download struct {
	Bytes    int64         // body bytes received
	Want     int64         // the file's size
	Elapsed  time.Duration // until complete or given up
	Complete bool
	ServedBy string // node that answered (X-Served-By)
	Err      error  // why it did not complete (deadline, reset, ...)
}

func (d Download) String() string {
	if d.Complete {
		return fmt.Sprintf("%d bytes in %.3f s", d.Bytes, d.Elapsed.Seconds())
	}
	return fmt.Sprintf("%d of %d bytes after %.3f s (%v)", d.Bytes, d.Want, d.Elapsed.Seconds(), d.Err)
}

// Get downloads the file from the VIP of family f, from the client's
// address number src, giving up after timeout. Its socket is created in the
// client namespace.
func (l *Lab) Get(ctx context.Context, f Family, src int, timeout time.Duration) Download {
	return l.get(ctx, ClientAddr(f, src), VIP(f), timeout)
}

func (l *Lab) get(ctx context.Context, from, to netip.Addr, timeout time.Duration) (d Download) {
	d.Want = int64(len(l.file))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	local := &net.TCPAddr{IP: from.AsSlice()}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := l.Client.DialContext(ctx, network, addr, local)
			// Closing aborts with a RST (SO_LINGER 0): an unfinished
			// download's server socket dies at once instead of
			// retransmitting into the next phase, where a relayed PTB
			// about it would teach the owner the PMTU early. Set here
			// because the transport itself closes the connection when
			// the deadline hits.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			return c, err
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	url := "http://" + net.JoinHostPort(to.String(), "80") + FilePath
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		d.Err = err
		return d
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		d.Elapsed = time.Since(start)
		d.Err = err
		return d
	}
	d.ServedBy = resp.Header.Get("X-Served-By")
	n, err := io.Copy(io.Discard, resp.Body)
	d.Elapsed = time.Since(start)
	d.Bytes = n
	switch {
	case err != nil:
		d.Err = err
	case resp.StatusCode != http.StatusOK:
		d.Err = errors.New(resp.Status)
	case n != d.Want:
		d.Err = fmt.Errorf("short body: %d of %d (Content-Length %s)", n, d.Want, strconv.FormatInt(resp.ContentLength, 10))
	default:
		d.Complete = true
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !d.Complete {
		d.Err = fmt.Errorf("no completion within %v", timeout)
	}
	resp.Body.Close()
	return d
}

// GetParallel runs n downloads at once, from the client's addresses 0..n-1
// (n <= NumClientAddrs), each giving up after timeout.
func (l *Lab) GetParallel(ctx context.Context, f Family, n int, timeout time.Duration) []Download {
	n = min(n, NumClientAddrs)
	out := make([]Download, n)
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() {
			out[i] = l.Get(ctx, f, i, timeout) // each goroutine owns out[i]
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-done
	}
	return out
}
