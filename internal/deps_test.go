package internal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

const module = "github.com/twistd-go/twistd/"

// A room is a set of packages (a path, and with a trailing "/..." every
// package below it) and the rooms its code may import. These are the
// arrows of DESIGN.md ("Rooms and arrows"); a new package needs a room,
// and a new arrow is a design change made here on purpose.
type room struct {
	pattern string
	imports []string
	// tests may import these as well (in _test.go files)
	testImports []string
	why         string
}

var rooms = []room{
	{"cmd/...", []string{"twistd", "plugins/standard", "internal/app", "internal/plugins/all", "internal/plugins"}, []string{"internal/testutil"},
		"main: imports the plugin set and calls the app"},
	// The public API: thin layers over internal/, nothing of the runner
	// but Main.
	{"twistd", []string{"internal/app"}, []string{"internal/testutil"}, "Main, for a main package of another module"},
	{"plugin", []string{"internal/plugins"}, nil, "registering a plugin"},
	{"service", []string{"internal/service"}, nil, "the service model"},
	{"reactor", []string{"internal/reactor"}, nil, "the reactor's contract"},
	{"plugins/standard", []string{"internal/plugins/all"}, nil, "the stock plugins through one import"},
	{"internal/app", []string{"internal/app/appfile", "internal/app/daemon", "internal/logging", "internal/plugins", "internal/reactor", "internal/service"},
		[]string{"internal/plugins/all", "internal/testutil"},
		"the runner: the cobra tree, the lifecycle; it parses endpoints (--metrics) with the reactor"},
	{"internal/app/appfile", []string{"internal/plugins", "internal/reactor", "internal/service"}, []string{"internal/plugins/..."},
		"application files: services built by the registry's makers"},
	{"internal/app/daemon", []string{"internal/safefile"}, nil, "Unix specifics of the runner: only the safe opening of its files below them"},
	{"internal/logging", []string{"internal/safefile"}, nil, "slog handlers: plugins and the reactor only ever call slog; the log file is opened safely"},
	{"internal/safefile", nil, nil, "opening a root daemon's own files without following planted links: a leaf"},
	{"internal/service", nil, []string{"internal/testutil"}, "the service model, imported by everyone, so it imports nothing"},
	{"internal/reactor", []string{"internal/service"}, []string{"internal/testutil"},
		"the networking core: never plugins or the runner"},
	{"internal/plugins", []string{"internal/service", "internal/reactor"}, nil, "the registry"},
	{"internal/plugins/all", []string{"internal/plugins/..."}, []string{"internal/reactor", "internal/service"}, "the compiled-in plugin set; its test walks each plugin's tree for ports"},
	{"internal/plugins/*/...", []string{"plugin", "reactor", "service", "internal/plugins", "internal/reactor", "internal/service", "internal/passwd", "internal/logging", "."}, []string{"internal/testutil"},
		"a plugin: the registry, the reactor and the service model (through the public API where it has what the plugin needs), and its own packages; password files; slog for logs and the logging package's per-peer limiter only; no runner, no other plugin"},
	{"internal/passwd", nil, nil, "password files (user:bcrypt hash), shared by ftp-lite and chat: a leaf"},
	{"internal/testutil", nil, nil, "test helpers: run the binary by path, import nothing of ours"},
	{"internal", nil, nil, "this test, which reads the graph through go list"},
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// listPackages returns every package of the module with its imports, as
// go list reports them (the build's own view, build tags included).
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: no go command on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "list", "-json", "../...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath, _ = rel(p.ImportPath)
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// matches reports whether path is in pattern: the path itself, "P/..." for
// P and everything below, "P/*/..." for everything below P (not P).
func matches(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/*/..."); ok {
		return strings.HasPrefix(path, base+"/")
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

// roomOf is the most specific room holding path: the one with the longest
// literal prefix.
func roomOf(path string) (room, bool) {
	var best room
	found := false
	for _, r := range rooms {
		if matches(r.pattern, path) && (!found || len(strings.TrimSuffix(r.pattern, "...")) > len(strings.TrimSuffix(best.pattern, "..."))) {
			best, found = r, true
		}
	}
	return best, found
}

// pluginOf is the plugin directory (internal/plugins/NAME) path is in, or "".
func pluginOf(path string) string {
	rest, ok := strings.CutPrefix(path, "internal/plugins/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return "internal/plugins/" + name
}

// allowed tells whether code in from may import to; "." in a room's list
// stands for the importer's own plugin.
func allowed(from, to string, list []string) bool {
	for _, a := range list {
		if a == "." {
			if p := pluginOf(from); p != "" && matches(p+"/...", to) {
				return true
			}
			continue
		}
		if matches(a, to) {
			return true
		}
	}
	return false
}

// rel is path within the module ("twistd" for the module's root
// package), and whether it is ours at all.
func rel(path string) (string, bool) {
	if path+"/" == module {
		return "twistd", true
	}
	return strings.CutPrefix(path, module)
}

func ours(imports []string) []string {
	var r []string
	for _, i := range imports {
		if p, ok := rel(i); ok {
			r = append(r, p)
		}
	}
	return r
}

// Every import between our packages follows an arrow of DESIGN.md: the
// service model and the logging package import nothing of ours, the
// reactor only the service model, plugins never the runner (nor each
// other, nor the log handlers), nothing but cmd imports the runner, and
// nothing imports cmd.
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		r, ok := roomOf(p.ImportPath)
		if !ok {
			t.Errorf("%s is in no room of internal/deps_test.go: add it with the arrows DESIGN.md draws for it", p.ImportPath)
			continue
		}
		for _, to := range ours(p.Imports) {
			if !allowed(p.ImportPath, to, r.imports) {
				t.Errorf("%s imports %s, against the design (%s: %s)", p.ImportPath, to, r.pattern, r.why)
			}
		}
		testList := slices.Concat(r.imports, r.testImports)
		for _, to := range ours(slices.Concat(p.TestImports, p.XTestImports)) {
			if to != p.ImportPath && !allowed(p.ImportPath, to, testList) {
				t.Errorf("tests of %s import %s, against the design (%s: %s)", p.ImportPath, to, r.pattern, r.why)
			}
		}
	}
}

// The rules themselves: a sample of imports the design forbids is
// refused, so a mistake in the table that let everything through fails.
func TestImportRulesRefuse(t *testing.T) {
	for _, c := range []struct {
		from, to string
		test     bool
		ok       bool
	}{
		{"internal/service", "internal/logging", false, false},
		{"internal/reactor", "internal/service", false, true},
		{"internal/reactor", "internal/plugins", false, false},
		{"internal/reactor", "internal/app", true, false},
		{"internal/logging", "internal/service", false, false},
		{"internal/plugins/echo", "internal/app", false, false},
		{"internal/plugins/echo", "internal/app/daemon", false, false},
		{"internal/plugins/echo", "internal/plugins/chat", false, false},
		{"internal/plugins/chat/client", "internal/plugins/chat/wire", false, true},
		{"internal/plugins/echo", "internal/app/daemon", false, false},
		{"internal/plugins/echo", "internal/testutil", false, false},
		{"internal/plugins/echo", "internal/testutil", true, true},
		{"internal/app", "cmd/twistd", false, false},
		{"internal/app", "internal/plugins/echo", false, false},
		{"internal/app/daemon", "internal/app", false, false},
		{"internal/testutil", "internal/app", false, false},
		{"cmd/twistd", "internal/app", false, true},
		{"cmd/gen-man", "internal/reactor", false, false},
	} {
		r, ok := roomOf(c.from)
		if !ok {
			t.Errorf("%s: no room", c.from)
			continue
		}
		list := r.imports
		if c.test {
			list = slices.Concat(r.imports, r.testImports)
		}
		if got := allowed(c.from, c.to, list); got != c.ok {
			t.Errorf("%s -> %s (test %v): allowed %v, want %v (room %s)", c.from, c.to, c.test, got, c.ok, r.pattern)
		}
	}
}
