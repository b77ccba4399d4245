package kube

import (
	"errors"
	"fmt"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
)

// register exports the watch state. The values live in atomics the watch
// already keeps, so the metrics cost nothing between scrapes.
func (w *Watcher) register(reg *expo.Registry) error {
	cs := []expo.Collector{
		expo.NewGaugeFunc(expo.Opts{
			Name: "gopmtud_kubernetes_last_sync_timestamp_seconds",
			Help: "Unix time of the last successful contact with the API server (list, watch start or watch event, bookmarks included); 0 before the first.",
		}, func() float64 {
			if t := w.LastSync(); !t.IsZero() {
				return float64(t.UnixNano()) / 1e9
			}
			return 0
		}),
		expo.NewCounterFunc(expo.Opts{
			Name: "gopmtud_kubernetes_watch_errors_total",
			Help: "Failed Node list and watch requests; the last known peers stay in use meanwhile.",
		}, func() float64 { return float64(w.WatchErrors()) }),
		expo.NewGaugeFunc(expo.Opts{
			Name: "gopmtud_kubernetes_synced",
			Help: "1 once the initial Node list has been received and published.",
		}, func() float64 { return b2f(w.Synced()) }),
		expo.NewGaugeFunc(expo.Opts{
			Name: "gopmtud_kubernetes_connected",
			Help: "1 when the most recent request to the API server succeeded.",
		}, func() float64 { return b2f(w.Connected()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if errors.Is(err, expo.ErrAlreadyRegistered) {
				return fmt.Errorf("kubernetes: metrics already registered (one Watcher per registry): %w", err)
			}
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
