package tunnelwire

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// DefaultPoll is how often a KeyFile looks at its file. Polling the content,
// not inotify on the path: a Kubernetes Secret volume replaces a symlink to
// a directory, and a watch on the file sees nothing.
const DefaultPoll = 2 * time.Second

// KeyFile is a key file kept fresh: Keyring returns the keys of the last
// good version of the file. A bad new version (unreadable, unparsable) keeps
// the old keys and is reported by Err, in the log and in the metric
// gopmtud_tunnel_key_reloads_total{result}. Safe for concurrent use.
type KeyFile struct {
	path string
	log  *slog.Logger
	ring atomic.Pointer[Keyring]

	mu   sync.Mutex
	last []byte // content of the last version read, good or bad
	err  error  // why the last version was refused; nil if it is in use

	reloads *expo.CounterVec
}

// OpenKeyFile reads and parses path. Unlike a later change, a bad file here
// is an error: the caller refuses to start. reg may be nil.
func OpenKeyFile(path string, log *slog.Logger, reg *expo.Registry) (*KeyFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeyFile{path: path, log: log}
	k.reloads = expo.NewCounterVec(expo.Opts{
		Name: "gopmtud_tunnel_key_reloads_total",
		Help: "Changes of the tunnel key file seen, by result (ok: in use; error: refused, the previous keys stay).",
	}, "result")
	k.reloads.WithLabelValues("ok")
	k.reloads.WithLabelValues("error")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tunnel key file: %w", err)
	}
	ring, err := ParseKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("tunnel key file %s: %w", path, err)
	}
	k.ring.Store(ring)
	k.last = b
	if reg != nil {
		if err := reg.Register(k.reloads); err != nil {
			return nil, err
		}
	}
	log.Info("tunnel keys loaded", "file", path, "keys", ring.Len(), "ids", strings.Join(ring.IDs(), ","), "signer", ring.IDs()[0])
	return k, nil
}

// Keyring returns the keys in use. Cheap: an atomic load.
func (k *KeyFile) Keyring() *Keyring { return k.ring.Load() }

// Err is why the file's current content is not in use (nil if it is).
func (k *KeyFile) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Run polls the file every interval (DefaultPoll if 0) until ctx ends.
func (k *KeyFile) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPoll
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.Reload()
		}
	}
}

// Reload reads the file once and takes its keys if it changed and is good.
func (k *KeyFile) Reload() {
	b, err := os.ReadFile(k.path)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil && bytes.Equal(b, k.last) {
		return
	}
	if err != nil {
		if k.err == nil || k.err.Error() != err.Error() {
			k.fail(fmt.Errorf("tunnel key file: %w", err))
		}
		return
	}
	k.last = b
	ring, err := ParseKeyFile(b)
	if err != nil {
		k.fail(fmt.Errorf("tunnel key file %s: %w", k.path, err))
		return
	}
	k.ring.Store(ring)
	k.err = nil
	k.reloads.WithLabelValues("ok").Inc()
	k.log.Info("tunnel keys reloaded", "file", k.path, "keys", ring.Len(), "ids", strings.Join(ring.IDs(), ","), "signer", ring.IDs()[0])
}

func (k *KeyFile) fail(err error) {
	k.err = err
	k.reloads.WithLabelValues("error").Inc()
	old := k.ring.Load()
	k.log.Error("tunnel key file refused; the previous keys stay in use", "err", err, "ids", strings.Join(old.IDs(), ","))
}
