package metrics

import (
	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/version"
)

// registerBuildInfo exports gopmtud_build_info, always 1, so that a query can
// join any series with the version that produced it (the usual *_build_info).
func registerBuildInfo(reg *expo.Registry) {
	in := version.Get()
	g := expo.NewGauge(expo.Opts{
		Name:        "gopmtud_build_info",
		Help:        "Always 1; labels say which go-pmtud build is running.",
		ConstLabels: map[string]string{"version": in.Version, "revision": in.Revision, "goversion": in.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
