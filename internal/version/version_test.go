package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestLinkerValuesWin(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v9.9.9"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}
	in := from(bi, "v0.2.0", "def")
	if in.Version != "v0.2.0" || in.Revision != "def" || in.GoVersion != "go1.26.8" || in.Modified {
		t.Fatalf("%+v", in)
	}
}

func TestBuildInfoFallback(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}
	in := from(bi, "", "")
	if in.Version != "unknown" || in.Revision != "abc" || !in.Modified {
		t.Fatalf("%+v", in)
	}
	if s := in.String(); !strings.Contains(s, "revision abc, modified") {
		t.Fatalf("%q", s)
	}
	if in := from(nil, "", ""); in.Version != "unknown" || in.Revision != "unknown" || in.GoVersion == "" {
		t.Fatalf("no build info: %+v", in)
	}
}
