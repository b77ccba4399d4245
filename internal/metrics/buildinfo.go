package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-pmtud/go-pmtud/internal/version"
)

// registerBuildInfo exports gopmtud_build_info, always 1, so that a query can
// join any series with the version that produced it (the usual *_build_info).
func registerBuildInfo(reg prometheus.Registerer) {
	in := version.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; labels say which go-pmtud build is running.",
		ConstLabels: prometheus.Labels{"version": in.Version, "revision": in.Revision, "goversion": in.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
