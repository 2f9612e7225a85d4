package appfile

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
)

// Build makes every service through its plugin's Options and Build, puts
// grouped services into one collection per group (placed where the group
// first appears), and checks that no two services listen on one address.
// It returns the top-level services in file order. Plugins' Build does no
// I/O, so nothing is bound or opened here. env gives each service its
// environment by name (the runner's settings and metrics); nil gives only
// the name and log.
func (a *App) Build(log *slog.Logger, env func(service string) plugins.Env) ([]service.Service, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if env == nil {
		env = func(name string) plugins.Env { return plugins.Env{Name: name, Log: log} }
	}
	var errs Errors
	errorf := func(line int, format string, args ...any) {
		errs = append(errs, &Error{File: a.File, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	var top []service.Service
	groups := map[string]*service.Collection{}
	var built []builtService
	for _, s := range a.Services {
		if s.broken {
			continue
		}
		svc, ok := a.buildOne(s, env(s.Name), errorf)
		if !ok {
			continue
		}
		built = append(built, builtService{s, svc})
		if s.Group == "" {
			top = append(top, svc)
			continue
		}
		g, ok := groups[s.Group]
		if !ok {
			g = service.NewCollection(s.Group, log)
			groups[s.Group] = g
			top = append(top, g)
		}
		if err := g.Add(svc); err != nil {
			errorf(s.Line, "%v", err)
		}
	}
	checkAddresses(built, errorf)
	if len(errs) > 0 {
		return nil, errs.Sorted()
	}
	return top, nil
}

type builtService struct {
	entry *Service
	svc   service.Service
}

func (a *App) buildOne(s *Service, env plugins.Env, errorf func(int, string, ...any)) (service.Service, bool) {
	m, ok := plugins.Lookup(s.Plugin)
	if !ok {
		var names []string
		for _, m := range plugins.All() {
			names = append(names, m.Name)
		}
		errorf(s.PluginLine, "unknown plugin %q (compiled in: %s)", s.Plugin, strings.Join(names, ", "))
		return nil, false
	}
	fs := pflag.NewFlagSet(s.Plugin, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := m.Options(fs)
	good := true
	given := map[string]int{}
	for _, o := range s.Options {
		given[o.Key] = o.Line
		v, err := a.pathValue(fs, o)
		if err == nil {
			err = SetOption(fs, o.Key, v)
		}
		if err != nil {
			errorf(o.Line, "service %q: %v", s.Name, err)
			good = false
		}
	}
	var missing []string
	for _, f := range plugins.MissingRequired(fs) {
		// A required option given with a bad value has its error already.
		if f = strings.TrimPrefix(f, "--"); given[f] == 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		errorf(s.Line, "service %q: missing required option %s of %s", s.Name, strings.Join(missing, ", "), s.Plugin)
		good = false
	}
	if !good {
		return nil, false
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if use, ok := plugins.PathOf(f); ok && f.Value.String() != "" {
			a.paths = append(a.paths, Path{Service: s.Name, Option: f.Name, Line: cmp.Or(given[f.Name], s.Line), Value: f.Value.String(), Use: use})
		}
	})
	svc, err := build(env)
	if err != nil {
		errorf(s.Line, "service %q: %v", s.Name, err)
		return nil, false
	}
	if svc.Name() != s.Name {
		errorf(s.Line, "service %q: plugin %s named its service %q", s.Name, s.Plugin, svc.Name())
		return nil, false
	}
	return svc, true
}

// pathValue resolves the value of a path option against the file's
// directory and, for a path opened after the chroot, puts it inside the
// jail. Other values are returned as they are.
func (a *App) pathValue(fs *pflag.FlagSet, o Setting) (any, error) {
	f := fs.Lookup(o.Key)
	s, isString := o.Value.(string)
	if f == nil || !isString {
		return o.Value, nil
	}
	use, ok := plugins.PathOf(f)
	if !ok || s == "" {
		return o.Value, nil
	}
	p := a.Resolve(s)
	if a.Jail == "" || use.Early {
		return p, nil
	}
	rel, err := filepath.Rel(a.Jail, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, fmt.Errorf("option %s: %s is outside --chroot %s; the service opens it after the chroot", o.Key, p, a.Jail)
	}
	return filepath.Join("/", rel), nil
}

// Paths returns every file and directory the services built so far will
// open, defaults included, in file order.
func (a *App) Paths() []Path { return a.paths }

// SetOption sets the flag key of fs from a TOML value, as the command line
// would: numbers are given in decimal, lists only to flags that take several
// values, true/false only to boolean flags.
func SetOption(fs *pflag.FlagSet, key string, v any) error {
	f := fs.Lookup(key)
	if f == nil || key == "help" {
		return fmt.Errorf("unknown option %q%s", key, suggest(fs, key))
	}
	typ := f.Value.Type()
	isBool := typ == "bool"
	isList := strings.HasSuffix(typ, "Slice") || strings.HasSuffix(typ, "Array")
	var vals []string
	if list, ok := v.([]any); ok {
		if !isList {
			return fmt.Errorf("option %s takes one value, not a list", key)
		}
		for _, el := range list {
			s, err := scalar(el, isBool)
			if err != nil {
				return fmt.Errorf("option %s: %w", key, err)
			}
			vals = append(vals, s)
		}
	} else {
		s, err := scalar(v, isBool)
		if err != nil {
			return fmt.Errorf("option %s: %w", key, err)
		}
		vals = []string{s}
	}
	for _, s := range vals {
		if err := fs.Set(key, s); err != nil {
			var inv *pflag.InvalidValueError
			if errors.As(err, &inv) {
				err = inv.Unwrap()
				if errors.Is(err, strconv.ErrSyntax) {
					err = errors.New("not a number")
				} else if errors.Is(err, strconv.ErrRange) {
					err = errors.New("out of range")
				}
			}
			return fmt.Errorf("invalid value %q for option %s: %v", s, key, err)
		}
	}
	return nil
}

func scalar(v any, isBool bool) (string, error) {
	switch x := v.(type) {
	case bool:
		if !isBool {
			return "", errors.New("true/false given to an option that takes a value")
		}
		return strconv.FormatBool(x), nil
	case string:
		if isBool {
			return "", fmt.Errorf("takes true or false, not the string %q", x)
		}
		return x, nil
	case int64:
		if isBool {
			return "", errors.New("takes true or false, not a number")
		}
		return strconv.FormatInt(x, 10), nil
	case float64:
		if isBool {
			return "", errors.New("takes true or false, not a number")
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("%s is not a valid value", typeName(v))
}

// suggest names the option meant when key is one edit away from it.
func suggest(fs *pflag.FlagSet, key string) string {
	best := ""
	fs.VisitAll(func(f *pflag.Flag) {
		if best == "" && f.Name != "help" && (oneEdit(key, f.Name) || (f.Shorthand != "" && f.Shorthand == key)) {
			best = f.Name
		}
	})
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// oneEdit reports whether a and b differ by one inserted, deleted or
// replaced byte, or two swapped neighbours.
func oneEdit(a, b string) bool {
	if len(a) == len(b) {
		for i := 0; i+1 < len(a); i++ {
			if a[i] != b[i] {
				if a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:] {
					return true
				}
				break
			}
		}
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 || a == b {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:]
	}
	return a[i:] == b[i+1:]
}

// endpointer is what a service that listens tells about it (reactor.Port).
type endpointer interface {
	Endpoint() reactor.Endpoint
}

// Endpoints returns every endpoint s and its descendants will bind.
func Endpoints(s service.Service) []reactor.Endpoint {
	var out []reactor.Endpoint
	if e, ok := s.(endpointer); ok {
		out = append(out, e.Endpoint())
	}
	if c, ok := s.(service.Container); ok {
		for _, k := range c.Services() {
			out = append(out, Endpoints(k)...)
		}
	}
	return out
}

// checkAddresses reports each service that would listen where an earlier
// one does.
func checkAddresses(built []builtService, errorf func(int, string, ...any)) {
	type owner struct {
		ep    reactor.Endpoint
		entry *Service
	}
	var seen []owner
	for _, b := range built {
		eps := Endpoints(b.svc)
		for _, ep := range eps {
			for _, o := range seen {
				if clash(ep, o.ep) {
					errorf(b.entry.Line, "service %q would listen on %s, as service %q (line %d) does", b.entry.Name, ep, o.entry.Name, o.entry.Line)
					break
				}
			}
		}
		for _, ep := range eps {
			seen = append(seen, owner{ep, b.entry})
		}
	}
}

// clash reports whether two endpoints cannot both be bound: the same
// address, or the same TCP port where one side is every interface (Linux
// refuses 127.0.0.1:P while *:P is listening). Port 0 never clashes.
func clash(a, b reactor.Endpoint) bool {
	if a.Kind == "tcp" && b.Kind == "tcp" {
		if a.Port != b.Port || a.Port == 0 {
			return false
		}
		ha, hb := host(a.Interface), host(b.Interface)
		return ha == hb || ha == "*" || hb == "*"
	}
	return a.Key() == b.Key()
}

// host canonicalises an interface for comparison. "localhost" is what Go
// listens on as 127.0.0.1 (it prefers the IPv4 address).
func host(iface string) string {
	switch iface {
	case "", "0.0.0.0", "::":
		return "*"
	case "localhost":
		return "127.0.0.1"
	}
	if ip, err := netip.ParseAddr(iface); err == nil {
		return ip.Unmap().String()
	}
	return iface
}
