package metrics

import (
	"strings"
	"testing"

	"github.com/go-pmtud/go-pmtud/internal/metrics/expo"
	"github.com/go-pmtud/go-pmtud/internal/version"
)

// familyText is the exposition of the family name alone.
func familyText(t *testing.T, m *Metrics, name string) string {
	t.Helper()
	for _, f := range m.Registry.Gather() {
		if f.Name == name {
			var b strings.Builder
			if err := expo.WriteText(&b, []expo.Family{f}); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}
	}
	t.Fatalf("%s not exported", name)
	return ""
}

func TestBuildInfoCarriesVersionRevisionGoVersion(t *testing.T) {
	m := New("l2")
	in := version.Get()
	want := `# HELP gopmtud_build_info Always 1; labels say which go-pmtud build is running.
# TYPE gopmtud_build_info gauge
gopmtud_build_info{goversion="` + in.GoVersion + `",revision="` + in.Revision + `",version="` + in.Version + `"} 1
`
	if got := familyText(t, m, "gopmtud_build_info"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
