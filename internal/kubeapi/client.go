package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Client makes GET requests to the API server.
type Client struct {
	base  *url.URL
	http  *http.Client
	agent string
	token tokenSource
}

// New returns a client for cfg. It opens no connection.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.Server)
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("kubernetes API server %q: want https://host:port", cfg.Server)
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		// HTTP/2 carries the watches on one connection; its pings notice a
		// server that went away without closing the connection.
		ForceAttemptHTTP2: true,
		HTTP2:             &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
		IdleConnTimeout:   90 * time.Second,
	}
	agent := cfg.UserAgent
	if agent == "" {
		agent = "go-pmtud"
	}
	return &Client{base: base, http: &http.Client{Transport: tr}, agent: agent,
		token: tokenSource{static: cfg.Token, file: cfg.TokenFile}}, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, InsecureSkipVerify: cfg.Insecure}
	if len(cfg.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, errors.New("kubernetes CA: no PEM certificate found")
		}
		tc.RootCAs = pool
	}
	if len(cfg.CertData) > 0 {
		cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Get requests path with query and returns the response body on success;
// the caller closes it. A response other than 200 is a *StatusError.
func (c *Client) Get(ctx context.Context, path string, query url.Values) (io.ReadCloser, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	tok, err := c.token.get()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusOf(resp)
	}
	return resp.Body, nil
}

// statusOf reads the Status a failed request returns, or makes one.
func statusOf(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{}
	if json.Unmarshal(body, se) != nil || se.Reason == "" && se.Message == "" {
		se.Reason, se.Message = http.StatusText(resp.StatusCode), string(bytes.TrimSpace(body))
	}
	se.Code = resp.StatusCode
	return se
}

// CloseIdle closes idle connections (at the end of tests and runs).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// tokenSource is a static token, or a token file read again once a minute,
// as client-go does, so a rotated bound token is picked up.
type tokenSource struct {
	static, file string

	mu     sync.Mutex
	cached string
	readAt time.Time
}

const tokenReread = time.Minute

func (t *tokenSource) get() (string, error) {
	if t.file == "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cached != "" && time.Since(t.readAt) < tokenReread {
		return t.cached, nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		if t.cached != "" {
			return t.cached, nil // keep the last token while the file is replaced
		}
		return "", fmt.Errorf("kubernetes token: %w", err)
	}
	t.cached, t.readAt = strings.TrimSpace(string(b)), time.Now()
	return t.cached, nil
}
