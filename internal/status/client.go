package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Path is where the daemon serves its Report, on the metrics listener.
const Path = "/status"

// Fetch asks the daemon at host:port for its Report.
func Fetch(ctx context.Context, host string, port int, timeout time.Duration) (Report, error) {
	var r Report
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("is go-pmtud running on this node? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return r, fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return r, fmt.Errorf("%s: %w", url, err)
	}
	return r, nil
}

// LocalHost is the host to reach a listener configured with address a:
// an unspecified or empty address is reached on loopback.
func LocalHost(a string) string {
	if ip := net.ParseIP(a); a == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return a
}
