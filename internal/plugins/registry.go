// Package plugins is the registry of compiled-in plugins (twistd's
// IServiceMaker plugins). A plugin package registers a Maker from its init
// function; cmd/twistd imports the set.
package plugins

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/service"
)

// Maker describes one plugin (Twisted's IServiceMaker).
type Maker struct {
	// Name is the tapname users type: `twistd NAME ...`.
	Name string
	// Description is the one line shown in `twistd --help`.
	Description string
	// Long is shown by `twistd NAME --help` above the options.
	Long string
	// Options declares the plugin's flags on fs and returns the function
	// that builds the service from their parsed values. It is called once
	// per service instance, so each instance has its own option values.
	Options func(fs *pflag.FlagSet) Build
	// Commands are tools the plugin offers beside serving, run as
	// `twistd NAME COMMAND ARGS...` in the foreground (ftp-lite's passwd).
	Commands []Command
}

// Command is a plugin's tool: it starts nothing, works on its arguments
// and standard streams, and returns.
type Command struct {
	Name  string
	Args  string // synopsis of the arguments, e.g. "USER"
	NArgs int    // how many arguments it takes
	Short string
	Long  string
	// Options declares the command's flags on fs and returns the function
	// that runs it with their parsed values.
	Options func(fs *pflag.FlagSet) RunCommand
}

// RunCommand runs a plugin's tool. An error it returns is a runtime
// failure, shown as one line.
type RunCommand func(args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Build makes the plugin's service from its parsed options. It must not do
// I/O or bind anything (that happens when the service starts): an error it
// returns is a usage error, reported before anything starts.
type Build func(env Env) (service.Service, error)

// Env is what the runner gives a plugin's Build.
type Env struct {
	// Name is the name the service must carry (the plugin name, or the
	// name given in an application file).
	Name string
	// Log is the logger for the service; plugins may also use slog.Default.
	Log *slog.Logger
	// MaxConnections is the runner's --max-connections (0: no limit): the
	// plugin sets it as the MaxConnections of each of its ports.
	MaxConnections int
	// Metrics is what the service counts through: its ports take
	// Metrics.Port(), and the plugin registers its own series with
	// Metrics.Registerer(). nil without --metrics; both then return nil.
	Metrics *Metrics
}

var (
	mu       sync.RWMutex
	registry = map[string]*Maker{}
)

// reserved are names cobra or the runner use for their own commands.
var reserved = []string{"help", "completion", "stop", "status", "check", "reload", "version"}

// Register adds a plugin. It panics on an empty name, a reserved or
// duplicate name or a nil Options: these are programming errors that must
// fail at start-up, not at run time.
func Register(m Maker) {
	if m.Name == "" || strings.HasPrefix(m.Name, "-") || strings.HasPrefix(m.Name, "__") || strings.ContainsAny(m.Name, " \t\n") {
		panic(fmt.Sprintf("plugins: invalid plugin name %q", m.Name))
	}
	if slices.Contains(reserved, m.Name) {
		panic(fmt.Sprintf("plugins: name %q is reserved", m.Name))
	}
	if m.Options == nil {
		panic(fmt.Sprintf("plugins: plugin %q has no Options", m.Name))
	}
	for _, c := range m.Commands {
		if c.Name == "" || c.Options == nil {
			panic(fmt.Sprintf("plugins: plugin %q has a command without a name or Options", m.Name))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[m.Name]; dup {
		panic(fmt.Sprintf("plugins: plugin %q registered twice", m.Name))
	}
	registry[m.Name] = &m
}

// Lookup returns the plugin with the given name.
func Lookup(name string) (*Maker, bool) {
	mu.RLock()
	defer mu.RUnlock()
	m, ok := registry[name]
	return m, ok
}

// All returns every plugin, sorted by name.
func All() []*Maker {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]*Maker, 0, len(registry))
	for _, m := range registry {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Maker) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// requiredKey marks required flags. The runner checks it (not cobra), so
// the command line and application files report a missing option alike.
const requiredKey = "twistd_required"

// MarkRequired marks flags that must be given.
func MarkRequired(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, requiredKey, []string{"true"}); err != nil {
			panic(fmt.Sprintf("plugins: %v", err))
		}
	}
}

// MissingRequired returns the required flags of fs that were not set.
func MissingRequired(fs *pflag.FlagSet) []string {
	var missing []string
	fs.VisitAll(func(f *pflag.Flag) {
		if v := f.Annotations[requiredKey]; len(v) > 0 && v[0] == "true" && !f.Changed {
			missing = append(missing, "--"+f.Name)
		}
	})
	return missing
}
