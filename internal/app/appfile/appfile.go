// Package appfile reads application files: TOML descriptions of several
// plugin services run in one process, the declarative counterpart of
// Twisted's .tac files.
//
//	name = "poetry"                 # application name (default: the file's base name)
//
//	[runner]                        # runner options; the command line wins
//	logfile = "poetry.log"
//	grace = "5s"
//
//	[[service]]
//	plugin = "fastpoetry"           # a registered plugin
//	name = "frost"                  # default: the plugin's name
//	group = "poems"                 # optional: grouped services share a collection
//	[service.options]               # the plugin's long option names and values
//	port = 10001
//	poem = "frost.txt"
//
// Values are those of the command line: option names without "--", numbers
// may be written as TOML integers, flags that take several values take a
// list. A relative path written in the file is relative to the file's own
// directory (as in docker-compose and Prometheus), so the file means the
// same from any working directory: the runner's pidfile, logfile, rundir,
// chroot and profiles, and every plugin option marked as a path
// (plugins.MarkPath). Paths on the command line stay relative to the
// working directory. String values of [runner] and [service.options] may
// take values from the environment: ${VAR}, ${VAR:-default}, $$ for a
// literal $ (env.go).
//
// Loading checks the file's shape; Build makes every service through its
// plugin and checks the whole. Every problem found is reported at once,
// each naming the file and line, and nothing is bound or opened on the way.
package appfile

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/twistd-go/twistd/internal/plugins"
)

// Error is one problem in an application file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every problem found in a file, in line order.
type Errors []*Error

func (es Errors) Error() string { return strings.Join(es.Lines(), "\n") }

// Lines returns one message per problem.
func (es Errors) Lines() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Sorted orders the problems by line, keeping the order of those on one line.
func (es Errors) Sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	return es
}

// Setting is one key = value of [runner] or of a service's options.
type Setting struct {
	Key   string
	Value any // string, int64, float64, bool or []any of those
	Line  int
	// From says which environment variables the value was taken from
	// ("$PORT", "default of unset $HOST"); nil for a value as written.
	From []string
}

// Service is one [[service]] entry.
type Service struct {
	Plugin     string
	PluginLine int
	Name       string // the plugin's name unless given
	NameLine   int
	Group      string
	GroupLine  int
	Line       int // of the [[service]] header
	Options    []Setting

	broken bool // its own entry has errors: not built
}

// App is a loaded application file.
type App struct {
	File     string // as given by the user, for messages
	Dir      string // absolute directory of the file; "" is the working directory
	Name     string
	Runner   []Setting
	Services []*Service

	// Jail is the absolute --chroot directory, set before Build: paths a
	// service opens after the chroot are rewritten to their place inside
	// it, and one outside it is an error.
	Jail string

	paths []Path // found by Build
}

// Path is one file or directory a built service will open.
type Path struct {
	Service string
	Option  string
	Line    int    // of the option, or of the [[service]] for a default
	Value   string // as the service will open it (inside the jail for a late path)
	Use     plugins.PathUse
}

// Resolve makes a relative path written in the file relative to the file's
// directory; "" (none) and absolute paths are returned as they are.
func (a *App) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(a.Dir, path)
}

// MaxSize is the largest application file read: a real one is a few KiB,
// and a limit keeps a link to /dev/zero from filling the memory.
const MaxSize = 1 << 20

// Load reads and checks path, which must be a regular file of at most
// MaxSize bytes (a FIFO is refused, not waited on). An error reading the
// file is returned as is; problems in its content come as Errors.
func Load(path string) (*App, error) {
	data, err := plugins.ReadFile(path, MaxSize)
	if err != nil {
		return nil, fmt.Errorf("application file %s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("application file %s: %w", path, err)
	}
	app, err := Parse(path, data)
	if app != nil {
		app.Dir = dir
	}
	return app, err
}

// Parse checks data, read from file, and substitutes the environment into
// its values (env.go). The App is returned with the Errors when it could be
// decoded at all, so Build can report problems of the other services too.
func Parse(file string, data []byte) (*App, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		line := 1
		msg := err.Error()
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ = de.Position()
		}
		return nil, Errors{{File: file, Line: line, Msg: "invalid TOML: " + strings.TrimPrefix(msg, "toml: ")}}
	}
	d := &decoder{file: file, lines: keyLines(data), lookup: os.LookupEnv}
	app := d.app(doc)
	if len(d.errs) > 0 {
		return app, d.errs.Sorted()
	}
	return app, nil
}

type decoder struct {
	file   string
	lines  *positions
	errs   Errors
	lookup func(string) (string, bool) // the environment
}

// line returns where path is defined, or where its nearest ancestor is.
func (d *decoder) line(path ...string) int { return d.lines.Line(path...) }

func (d *decoder) errorf(line int, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) app(doc map[string]any) *App {
	app := &App{File: d.file, Name: strings.TrimSuffix(filepath.Base(d.file), filepath.Ext(d.file))}
	for _, k := range d.sortedKeys(doc, nil) {
		v := doc[k]
		switch k {
		case "name":
			app.Name = d.name(v, "name", d.line(k))
		case "runner":
			app.Runner = d.settings(v, []string{k}, "[runner]")
		case "service":
			app.Services = d.services(v)
		default:
			d.errorf(d.line(k), "unknown key %q (an application file has name, [runner] and [[service]])", k)
		}
	}
	if list, ok := doc["service"].([]any); doc["service"] == nil || ok && len(list) == 0 {
		d.errorf(d.line("service"), "no services: describe each in a [[service]] table")
	}
	d.checkNames(app)
	return app
}

// sortedKeys returns t's keys in the order they appear in the file.
func (d *decoder) sortedKeys(t map[string]any, path []string) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		la := d.line(append(slices.Clone(path), a)...)
		lb := d.line(append(slices.Clone(path), b)...)
		return cmp.Or(cmp.Compare(la, lb), strings.Compare(a, b))
	})
	return keys
}

func (d *decoder) name(v any, what string, line int) string {
	s, ok := v.(string)
	switch {
	case !ok:
		d.errorf(line, "%s must be a string, not %s", what, typeName(v))
	case strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n"):
		d.errorf(line, "%s %q must be non-empty and without spaces", what, s)
	default:
		return s
	}
	return ""
}

func (d *decoder) settings(v any, path []string, where string) []Setting {
	t, ok := v.(map[string]any)
	if !ok {
		d.errorf(d.line(path...), "%s must be a table, not %s", where, typeName(v))
		return nil
	}
	var out []Setting
	for _, k := range d.sortedKeys(t, path) {
		line := d.line(append(slices.Clone(path), k)...)
		v, from, err := expandValue(t[k], d.lookup)
		if err != nil {
			d.errorf(line, "%s %s = %v", where, k, err)
			continue
		}
		out = append(out, Setting{Key: k, Value: v, Line: line, From: from})
	}
	return out
}

func (d *decoder) services(v any) []*Service {
	list, ok := v.([]any)
	if !ok {
		d.errorf(d.line("service"), "service must be an array of tables: write each as [[service]]")
		return nil
	}
	var out []*Service
	for i, el := range list {
		path := []string{"service", strconv.Itoa(i)}
		t, ok := el.(map[string]any)
		if !ok {
			d.errorf(d.line(path...), "each service must be a table, not %s", typeName(el))
			continue
		}
		out = append(out, d.service(t, path))
	}
	return out
}

func (d *decoder) service(t map[string]any, path []string) *Service {
	s := &Service{Line: d.line(path...)}
	before := len(d.errs)
	at := func(k string) int { return d.line(append(slices.Clone(path), k)...) }
	for _, k := range d.sortedKeys(t, path) {
		v := t[k]
		switch k {
		case "plugin":
			s.Plugin, s.PluginLine = d.name(v, "plugin", at(k)), at(k)
		case "name":
			s.Name, s.NameLine = d.name(v, "service name", at(k)), at(k)
		case "group":
			s.Group, s.GroupLine = d.name(v, "group", at(k)), at(k)
		case "options":
			s.Options = d.settings(v, append(slices.Clone(path), k), "[service.options]")
		default:
			d.errorf(at(k), "unknown key %q in [[service]] (plugin options go in [service.options])", k)
		}
	}
	if _, ok := t["plugin"]; !ok {
		d.errorf(s.Line, "service has no plugin = \"NAME\"")
	}
	if _, ok := t["name"]; !ok {
		s.Name, s.NameLine = s.Plugin, s.PluginLine
	}
	s.broken = len(d.errs) > before
	return s
}

// checkNames refuses two services with one name, and a group named like a
// service: names identify services in logs and must be unique in the tree.
func (d *decoder) checkNames(app *App) {
	seen := map[string]*Service{}
	for _, s := range app.Services {
		if s.Name == "" {
			continue
		}
		if first, dup := seen[s.Name]; dup {
			how := ""
			if s.NameLine == s.PluginLine {
				how = `; give each a name = "..."`
			}
			d.errorf(s.NameLine, "duplicate service name %q (also at line %d)%s", s.Name, first.NameLine, how)
			s.broken = true
			continue
		}
		seen[s.Name] = s
	}
	for _, s := range app.Services {
		if other, clash := seen[s.Group]; clash && s.Group != "" {
			d.errorf(s.GroupLine, "group %q has the name of the service at line %d", s.Group, other.NameLine)
			s.broken = true
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "true/false"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}
