// Package version says which go-pmtud this is: the release version and VCS
// revision stamped at link time (-ldflags -X), else what the Go toolchain
// recorded in the binary's build info.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time, e.g.
//
//	-ldflags "-X github.com/go-pmtud/go-pmtud/internal/version.version=v0.1.0
//	          -X github.com/go-pmtud/go-pmtud/internal/version.revision=$(git rev-parse HEAD)"
var (
	version  string
	revision string
)

// Info is what `go-pmtud version` prints and gopmtud_build_info carries.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goversion"`
	Modified  bool   `json:"modified,omitempty"`
}

// Get returns this binary's Info. Unknown parts read "unknown", never "".
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(bi, version, revision)
}

// from is Get without the globals, so that tests can feed it build info.
func from(bi *debug.BuildInfo, ldVersion, ldRevision string) Info {
	in := Info{Version: ldVersion, Revision: ldRevision, GoVersion: runtime.Version()}
	if bi != nil {
		in.GoVersion = bi.GoVersion
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Revision == "" {
					in.Revision = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true" && ldRevision == ""
			}
		}
	}
	if in.Version == "" {
		in.Version = "unknown"
	}
	if in.Revision == "" {
		in.Revision = "unknown"
	}
	return in
}

// String is the one line `go-pmtud version` prints.
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("go-pmtud " + in.Version + " (revision " + in.Revision)
	if in.Modified {
		b.WriteString(", modified")
	}
	b.WriteString(", " + in.GoVersion + ")")
	return b.String()
}
