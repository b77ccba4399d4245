// Package status is what `go-pmtud status` shows: the Report a running
// daemon serves as JSON at /status on its metrics listener, the text
// rendering of it, and a ring of the last relays. The JSON only grows:
// fields are added, never renamed, so an older client reads a newer daemon.
package status

import (
	"time"

	"github.com/go-pmtud/go-pmtud/internal/version"
)

// Report is a daemon's state at one moment.
type Report struct {
	Version   version.Info      `json:"version"`
	Node      string            `json:"node,omitempty"`
	Transport string            `json:"transport"`
	Started   time.Time         `json:"started"`
	Now       time.Time         `json:"now"`
	Ready     bool              `json:"ready"`
	Checks    []Check           `json:"checks"`
	Capture   Capture           `json:"capture"`
	Firewall  Firewall          `json:"firewall"`
	Peers     Peers             `json:"peers"`
	Counters  Counters          `json:"counters"`
	Recent    []Relay           `json:"recent"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// Check is one readiness check's outcome, as /readyz reports it.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Capture is the NFLOG listener's state.
type Capture struct {
	Up       bool   `json:"up"`
	Group    uint16 `json:"group"`
	Received uint64 `json:"received"`
	Lost     uint64 `json:"lost"`
	Overruns uint64 `json:"overruns"`
	Restarts uint64 `json:"restarts"`
}

// Firewall is the capture rule's state.
type Firewall struct {
	Mode  string `json:"mode"` // nftables or none
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// Peers is who the daemon relays to.
type Peers struct {
	Total    int            `json:"total"`
	BySource map[string]int `json:"by_source"`
	List     []Peer         `json:"list"`
}

// Peer is one peer and what the daemon knows of reaching it: send errors
// seen by the transport and, for l2, whether its MAC is resolved.
type Peer struct {
	Name       string    `json:"name,omitempty"`
	Addr       string    `json:"addr"`
	Reachable  bool      `json:"reachable"`
	Problem    string    `json:"problem,omitempty"`
	SendErrors uint64    `json:"send_errors"`
	LastError  string    `json:"last_error,omitempty"`
	LastErrAt  time.Time `json:"last_error_at,omitzero"`
}

// Counters are totals since start.
type Counters struct {
	Received   uint64            `json:"received"`
	Relayed    uint64            `json:"relayed"`
	FramesSent uint64            `json:"frames_sent"`
	SendErrors uint64            `json:"send_errors"`
	Dropped    map[string]uint64 `json:"dropped"` // non-zero reasons only
}
