package lab

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// ParallelResult is what RunParallel measured.
type ParallelResult struct {
	Scenario
	Prefix string
	// N downloads from N client addresses at once.
	N int
	// StallCompleted of them completed without go-pmtud; Completed with it.
	StallCompleted, Completed int
	// Slowest is the longest completed download with go-pmtud.
	Slowest time.Duration
	// RouterPTBs the router sent and Frames go-pmtud sent while it ran.
	RouterPTBs int64
	Frames     float64
	Dropped    map[string]float64 // go-pmtud drops by reason, all nodes
	Err        error
}

// RunParallel starts n downloads at once from n client addresses (distinct
// flows through the one router), first without go-pmtud and then with it
// and its default limits.
func RunParallel(ctx context.Context, sc Scenario, cfg RunConfig, n int) (res ParallelResult) {
	res.Scenario, res.N = sc, min(n, NumClientAddrs)
	cfg = cfg.withDefaults()
	l, err := Build(ctx, Options{Fabric: sc.Fabric, Receiver: sc.Receiver, FileSize: cfg.FileSize})
	if err != nil {
		res.Err = err
		return res
	}
	res.Prefix = l.Prefix
	defer func() {
		if err := l.Close(); err != nil && res.Err == nil {
			res.Err = err
		}
	}()
	for _, d := range l.GetParallel(ctx, sc.Family, res.N, cfg.StallTimeout) {
		if d.Complete {
			res.StallCompleted++
		}
	}
	ds, err := l.StartDaemons(ctx, DaemonConfig{Binary: cfg.Binary, Transport: sc.Transport, Args: cfg.Args})
	if err != nil {
		res.Err = err
		return res
	}
	p0, _ := l.RouterPTBs(sc.Family)
	for _, d := range l.GetParallel(ctx, sc.Family, res.N, cfg.DownloadTimeout) {
		if d.Complete {
			res.Completed++
			res.Slowest = max(res.Slowest, d.Elapsed)
		}
	}
	settle(ds) // count once every daemon has decided all it received
	p1, _ := l.RouterPTBs(sc.Family)
	res.RouterPTBs = p1 - p0
	res.Dropped = map[string]float64{}
	for _, d := range ds {
		m, err := d.Scrape(ctx)
		if err != nil {
			res.Err = err
			return res
		}
		res.Frames += m.Sum("gopmtud_frames_sent_total")
		for k, v := range m {
			if r, ok := label(k, "gopmtud_packets_dropped_total", "reason"); ok && v != 0 {
				res.Dropped[r] += v
			}
		}
	}
	return res
}

// label returns the value of label key in a sample name of metric name.
func label(sample, name, key string) (string, bool) {
	pre := name + "{"
	if len(sample) <= len(pre) || sample[:len(pre)] != pre {
		return "", false
	}
	var v string
	_, err := fmt.Sscanf(sample[len(pre):], key+"=%q", &v)
	return v, err == nil
}

// Overhead compares downloads that need go-pmtud's recovery with a control
// lab whose nodes already use the narrow hop's MTU.
type Overhead struct {
	Control, Relayed []time.Duration
	// Ratio is median(Relayed) / median(Control).
	Ratio float64
	// RouterPTBs the router sent during the relayed downloads (each of them
	// needed a recovery); ControlPTBs during the control ones (none).
	RouterPTBs, ControlPTBs int64
}

// MeasureOverhead downloads k times in a control lab (node MTU 1400, no
// PTB ever needed) and k times with go-pmtud in a normal lab, each from a
// fresh client address so every relayed download needs a recovery of its
// own (a PMTU is cached per destination).
func MeasureOverhead(ctx context.Context, sc Scenario, cfg RunConfig, k int) (Overhead, error) {
	var o Overhead
	cfg = cfg.withDefaults()
	k = min(k, NumClientAddrs)
	measure := func(opt Options, daemons bool, ptbs *int64) ([]time.Duration, error) {
		l, err := Build(ctx, opt)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		if daemons {
			if _, err := l.StartDaemons(ctx, DaemonConfig{Binary: cfg.Binary, Transport: sc.Transport, Args: cfg.Args}); err != nil {
				return nil, err
			}
		}
		var ts []time.Duration
		p0, _ := l.RouterPTBs(sc.Family)
		defer func() {
			p1, _ := l.RouterPTBs(sc.Family)
			*ptbs = p1 - p0
		}()
		for i := 0; i < k; i++ {
			d := l.Get(ctx, sc.Family, i, cfg.DownloadTimeout)
			if !d.Complete {
				return nil, fmt.Errorf("download %d (%s): %v", i, l.Prefix, d)
			}
			ts = append(ts, d.Elapsed)
		}
		return ts, nil
	}
	var err error
	if o.Control, err = measure(Options{Fabric: sc.Fabric, Receiver: sc.Receiver, FileSize: cfg.FileSize, NodeMTU: mtuNarrow}, false, &o.ControlPTBs); err != nil {
		return o, fmt.Errorf("control: %w", err)
	}
	if o.Relayed, err = measure(Options{Fabric: sc.Fabric, Receiver: sc.Receiver, FileSize: cfg.FileSize}, true, &o.RouterPTBs); err != nil {
		return o, fmt.Errorf("with go-pmtud: %w", err)
	}
	o.Ratio = float64(median(o.Relayed)) / float64(median(o.Control))
	return o, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func (c RunConfig) withDefaults() RunConfig {
	if c.StallTimeout <= 0 {
		c.StallTimeout = 3 * time.Second
	}
	if c.DownloadTimeout <= 0 {
		c.DownloadTimeout = 5 * time.Second
	}
	return c
}
