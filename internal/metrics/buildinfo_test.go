package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-pmtud/go-pmtud/internal/version"
)

func TestBuildInfoCarriesVersionRevisionGoVersion(t *testing.T) {
	m := New("l2")
	in := version.Get()
	want := `
# HELP gopmtud_build_info Always 1; labels say which go-pmtud build is running.
# TYPE gopmtud_build_info gauge
gopmtud_build_info{goversion="` + in.GoVersion + `",revision="` + in.Revision + `",version="` + in.Version + `"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "gopmtud_build_info"); err != nil {
		t.Fatal(err)
	}
}
