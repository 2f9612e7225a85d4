package plugins

import (
	"maps"
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

func noOptions(*pflag.FlagSet) Build { return nil }

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestRegister(t *testing.T) {
	// The registry is global: leave it as found, so -count=N reruns work.
	mu.Lock()
	saved := maps.Clone(registry)
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		registry = saved
		mu.Unlock()
	})
	Register(Maker{Name: "zz-test", Description: "x", Options: noOptions})
	Register(Maker{Name: "aa-test", Description: "y", Options: noOptions})
	mustPanic(t, "duplicate", func() { Register(Maker{Name: "zz-test", Options: noOptions}) })
	mustPanic(t, "empty name", func() { Register(Maker{Name: "", Options: noOptions}) })
	mustPanic(t, "reserved name", func() { Register(Maker{Name: "help", Options: noOptions}) })
	mustPanic(t, "nil options", func() { Register(Maker{Name: "nil-opts"}) })
	mustPanic(t, "command without options", func() {
		Register(Maker{Name: "cmd-test", Options: noOptions, Commands: []Command{{Name: "tool"}}})
	})
	var names []string
	for _, m := range All() {
		names = append(names, m.Name)
	}
	if !slices.IsSorted(names) || !slices.Contains(names, "aa-test") || !slices.Contains(names, "zz-test") {
		t.Fatalf("All() = %v", names)
	}
	if m, ok := Lookup("aa-test"); !ok || m.Description != "y" {
		t.Fatal("Lookup")
	}
}

func TestRequired(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("poem", "", "")
	fs.String("port", "1", "")
	MarkRequired(fs, "poem")
	if got := MissingRequired(fs); !slices.Equal(got, []string{"--poem"}) {
		t.Fatalf("missing = %v", got)
	}
	fs.Parse([]string{"--poem", "p.txt"})
	if got := MissingRequired(fs); len(got) != 0 {
		t.Fatalf("missing after set = %v", got)
	}
}
