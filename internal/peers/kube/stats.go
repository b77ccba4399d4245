package kube

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-pmtud/go-pmtud/internal/metrics"
)

// register exports the watch state. The values live in atomics the watch
// already keeps, so the metrics cost nothing between scrapes.
func (w *Watcher) register(reg prometheus.Registerer) error {
	const ns, sub = metrics.Namespace, "kubernetes"
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_sync_timestamp_seconds",
			Help: "Unix time of the last successful contact with the API server (list, watch start or watch event, bookmarks included); 0 before the first.",
		}, func() float64 {
			if t := w.LastSync(); !t.IsZero() {
				return float64(t.UnixNano()) / 1e9
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "watch_errors_total",
			Help: "Failed Node list and watch requests; the last known peers stay in use meanwhile.",
		}, func() float64 { return float64(w.WatchErrors()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "synced",
			Help: "1 once the initial Node list has been received and published.",
		}, func() float64 { return b2f(w.Synced()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connected",
			Help: "1 when the most recent request to the API server succeeded.",
		}, func() float64 { return b2f(w.Connected()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
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
