package app

import (
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "741818a0c9d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5"
	for _, tc := range []struct {
		main     string
		settings []debug.BuildSetting
		want     string
	}{
		{"v0.3.0", nil, "v0.3.0"},
		{"v0.3.0+dirty", vcs(rev, "true"), "v0.3.0 (modified)"},
		{"v0.0.0-20261204191032-741818a0c9d1+dirty", vcs(rev, "true"), "dev (741818a, modified)"},
		{"v0.3.1-0.20261204191032-741818a0c9d1", vcs(rev, "false"), "dev (741818a)"},
		{"(devel)", vcs(rev, "false"), "dev (741818a)"},
		{"(devel)", nil, "dev"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/twistd-go/twistd", Version: tc.main}, Settings: tc.settings}
		if got := buildVersion(bi); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.main, tc.settings, got, tc.want)
		}
	}
}
