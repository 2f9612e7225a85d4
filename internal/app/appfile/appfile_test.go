package appfile

import (
	"errors"
	"maps"
	"strings"
	"testing"

	_ "github.com/twistd-go/twistd/internal/plugins/fastpoetry"
	_ "github.com/twistd-go/twistd/internal/plugins/ftplite"
	"github.com/twistd-go/twistd/internal/service"
)

// load parses and builds src, returning the tree and every error line.
func load(t *testing.T, src string) (string, []string) {
	t.Helper()
	app, err := Parse("app.toml", []byte(src))
	var lines []string
	var es Errors
	if err != nil {
		if !errors.As(err, &es) {
			t.Fatalf("Parse error is %T, not Errors: %v", err, err)
		}
		lines = append(lines, es.Lines()...)
	}
	if app == nil {
		return "", lines
	}
	top, err := app.Build(nil, nil)
	if err != nil {
		if !errors.As(err, &es) {
			t.Fatalf("Build error is %T, not Errors: %v", err, err)
		}
		lines = append(lines, es.Lines()...)
	}
	if len(lines) > 0 {
		return "", lines
	}
	root := service.NewCollection(app.Name, nil)
	for _, s := range top {
		if err := root.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return service.Tree(root), nil
}

func TestGroupsAndTree(t *testing.T) {
	tree, errs := load(t, `name = "poetry"

[[service]]
plugin = "fastpoetry"
name = "frost"
group = "poems"
[service.options]
port = 10001
poem = "frost.txt"

[[service]]
plugin = "fastpoetry"
options = { port = "tcp:10003:interface=127.0.0.1", poem = "x.txt" }

[[service]]
plugin = "fastpoetry"
name = "kipling"
group = "poems"
options.port = 10002
options.poem = "kipling.txt"
options.iface = "::1"
`)
	if errs != nil {
		t.Fatal(errs)
	}
	want := `poetry
  poems
    frost
      poem (frost.txt)
      listener (tcp:10001:interface=localhost)
    kipling
      poem (kipling.txt)
      listener (tcp:10002:interface=::1)
  fastpoetry
    poem (x.txt)
    listener (tcp:10003:interface=127.0.0.1)
`
	if tree != want {
		t.Errorf("tree:\n%s\nwant:\n%s", tree, want)
	}
}

func TestErrorsAllAtOnceWithLines(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"syntax", "name = \"x\"\n[[service]\n", []string{"app.toml:2: invalid TOML: "}},
		{"duplicate key", "name = \"a\"\nname = \"b\"\n", []string{"app.toml:2: invalid TOML: "}},
		{"no services", "name = \"x\"\n", []string{"app.toml:1: no services"}},
		{"empty services", "name = \"x\"\n\nservice = []\n", []string{"app.toml:3: no services"}},
		{"services not tables", "service = [1]\n", []string{"app.toml:1: each service must be a table, not an integer"}},
		{"unknown keys", `nmae = "x"
[[service]]
plugin = "fastpoetry"
port = 1
[service.options]
poem = "p"
[runner]
grace = "1s"
`, []string{
			`app.toml:1: unknown key "nmae"`,
			`app.toml:4: unknown key "port" in [[service]] (plugin options go in [service.options])`,
		}},
		{"plugin problems", `[[service]]
plugin = "nosuch"

[[service]]
plugin = "fastpoetry"
name = "a"
[service.options]
poem = "p"
pome = "q"
port = true

[[service]]
plugin = "fastpoetry"
name = "b"
[service.options]
port = 10005

[[service]]
plugin = "fastpoetry"
name = "c"
options = { poem = "p", port = "tcp:nope" }

[[service]]
plugin = "fastpoetry"
name = "d"
options = { poem = ["a", "b"], iface = 7 }

[[service]]
plugin = "fastpoetry"
name = "e"
options = { poem = "p", port = 1.5 }
`, []string{
			`app.toml:2: unknown plugin "nosuch" (compiled in: `,
			`app.toml:9: service "a": unknown option "pome" (did you mean "poem"?)`,
			`app.toml:10: service "a": option port: true/false given to an option that takes a value`,
			`app.toml:12: service "b": missing required option poem of fastpoetry`,
			`app.toml:18: service "c": invalid value for --port: endpoint "tcp:nope": port "nope" is not a number`,
			`app.toml:26: service "d": option poem takes one value, not a list`,
			`app.toml:28: service "e": invalid value for --port: endpoint "1.5": unknown endpoint type "1.5"`,
		}},
		{"names and addresses", `[[service]]
plugin = "fastpoetry"
options = { poem = "p", port = "tcp:10010" }

[[service]]
plugin = "fastpoetry"
options = { poem = "p", port = 10011 }

[[service]]
plugin = "fastpoetry"
name = "b"
group = "fastpoetry"
options = { poem = "p", port = 10012 }

[[service]]
plugin = "fastpoetry"
name = "c"
options = { poem = "p", port = 10010, iface = "127.0.0.1" }

[[service]]
plugin = "fastpoetry"
name = "d"
options = { poem = "p", port = 10012 }

[[service]]
plugin = "fastpoetry"
name = "e"
options = { poem = "p", port = 0 }

[[service]]
plugin = "fastpoetry"
name = "f"
options = { poem = "p", port = 0 }
`, []string{
			`app.toml:6: duplicate service name "fastpoetry" (also at line 2); give each a name = "..."`,
			`app.toml:12: group "fastpoetry" has the name of the service at line 2`,
			`app.toml:15: service "c" would listen on tcp:10010:interface=127.0.0.1, as service "fastpoetry" (line 1) does`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got := load(t, c.src)
			if len(got) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, got[i], c.want[i])
				}
			}
		})
	}
}

// FuzzParse: any input gives an App or Errors with lines inside the file,
// never a panic. `go test` runs the seeds; `go test -fuzz FuzzParse` more.
func FuzzParse(f *testing.F) {
	f.Add("[[service]]\nplugin = \"fastpoetry\"\noptions = { port = 1, poem = \"p\" }\n")
	f.Add("a.b.c = 1\n[a.d]\n[[x.y]]\n[[x.y]]\nz = [{q = 1}, [2]]\n")
	f.Add("[runner]\ngrace = 1979-05-27T07:32:00Z\n[[service]]\n\"quoted.key\" = 'v'\n")
	f.Fuzz(func(t *testing.T, src string) {
		app, err := Parse("f.toml", []byte(src))
		if err == nil {
			if app == nil {
				t.Fatal("nil App without error")
			}
			app.Build(nil, nil)
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T: %v", err, err)
		}
		lines := strings.Count(src, "\n") + 1
		for _, e := range es {
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("line %d outside 1..%d: %v", e.Line, lines, e)
			}
		}
	})
}

// Paths in a file are relative to its directory; with a jail, a path the
// service opens after the chroot becomes its path inside, one outside is
// refused, and one opened before the chroot (ftp-lite's root) stays.
func TestPathsResolveAgainstTheFile(t *testing.T) {
	src := `[[service]]
plugin = "fastpoetry"
name = "in"
options = { port = "tcp:0", poem = "jail/p.txt" }

[[service]]
plugin = "fastpoetry"
name = "abs"
options = { port = "tcp:0", poem = "/etc/poem.txt" }

[[service]]
plugin = "ftp-lite"
options = { port = "tcp:0", root = "data" }
`
	app, err := Parse("app.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	app.Dir = "/srv/app"
	if _, err := app.Build(nil, nil); err != nil {
		t.Fatal(err)
	}
	got := pathValues(app)
	want := map[string]string{"in poem": "/srv/app/jail/p.txt", "abs poem": "/etc/poem.txt", "ftp-lite root": "/srv/app/data"}
	if !maps.Equal(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}

	app, _ = Parse("app.toml", []byte(src))
	app.Dir, app.Jail = "/srv/app", "/srv/app/jail"
	_, err = app.Build(nil, nil)
	if err == nil || err.Error() != `app.toml:9: service "abs": option poem: /etc/poem.txt is outside --chroot /srv/app/jail; the service opens it after the chroot` {
		t.Fatalf("with a jail: %v", err)
	}
	got = pathValues(app)
	want = map[string]string{"in poem": "/p.txt", "ftp-lite root": "/srv/app/data"}
	if !maps.Equal(got, want) {
		t.Errorf("paths with a jail %v, want %v", got, want)
	}
}

// pathValues maps "SERVICE OPTION" to the path the service will open.
func pathValues(app *App) map[string]string {
	out := map[string]string{}
	for _, p := range app.Paths() {
		out[p.Service+" "+p.Option] = p.Value
	}
	return out
}
