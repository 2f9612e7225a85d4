package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/app/appfile"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/service"
)

// registerApp declares the runner flags of application files and profiling.
func (o *Options) registerApp(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Application, "application", "y", "", "run the application described in this TOML file instead of one plugin")
	fs.BoolVar(&o.Check, "check", false, "check the application file (or plugin options), print the service tree and exit")
	fs.StringVarP(&o.Profile, "profile", "p", "", "write a CPU profile of the whole run to this file, in the run directory (go tool pprof BINARY FILE)")
	fs.StringVar(&o.ProfileMem, "profile-mem", "", "write a heap profile to this file at shutdown, in the run directory")
}

// notInFile are root flags an application file cannot set: they choose what
// to run rather than how.
var notInFile = map[string]bool{"application": true, "check": true, "help": true, "version": true}

// runApplication is the -y path: load the file, apply its runner options
// where the command line gave none, build every service, and report every
// problem at once (exit 2) before anything is bound. With --check it prints
// the tree instead of running it.
func runApplication(opts *Options, flags *pflag.FlagSet, stdout, stderr io.Writer) error {
	app, err := appfile.Load(opts.Application)
	var errs appfile.Errors
	if err != nil && !errors.As(err, &errs) {
		return usageErrorf("%v", err)
	}
	if app == nil {
		return withCode(ExitUsage, errs)
	}
	errs = append(errs, applyRunnerSettings(app, flags)...)

	r, rerr := newRunner(opts, flags, app.Name, stdout, stderr)
	var log *slog.Logger
	var env func(string) plugins.Env
	if rerr == nil {
		log, env = r.log, r.env
		app.Jail = r.set.chroot
	}
	top, err := app.Build(log, env)
	var berrs appfile.Errors
	if errors.As(err, &berrs) {
		errs = append(errs, berrs...)
	}
	if rerr != nil {
		if len(errs) == 0 {
			return rerr
		}
		errs = append(errs, &appfile.Error{Msg: rerr.Error()})
	}
	var missing appfile.Errors // files a service would not open: exit 1
	if opts.Check && rerr == nil {
		var paths []pathCheck
		for _, p := range app.Paths() {
			paths = append(paths, pathCheck{file: app.File, line: p.Line, what: fmt.Sprintf("service %q: %s", p.Service, p.Option), path: p.Value, use: p.Use})
		}
		if missing, err = checkResources(r.set, flags, paths); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return withCode(ExitUsage, append(errs, missing...).Sorted())
	}
	if len(missing) > 0 {
		return failure(missing)
	}
	r.runs = fmt.Sprintf("application %s (%s)", app.Name, app.File)
	for _, s := range top {
		if err := r.root.Add(s); err != nil {
			return usageErrorf("%s: %v", opts.Application, err)
		}
	}
	if opts.Check {
		printCheck(stdout, opts.Application, r.root, flags)
		printFromEnv(stdout, app)
		return nil
	}
	return r.run()
}

// runnerPaths are the runner flags that take a path: written in a file,
// they are relative to the file's directory.
var runnerPaths = map[string]bool{"pidfile": true, "logfile": true, "rundir": true, "chroot": true, "profile": true, "profile-mem": true}

// applyRunnerSettings sets the runner flags the file names, except those
// given on the command line, which win. Relative paths are resolved
// against the file's directory, so stop and status (which read the
// pidfile through here) find the daemon from any working directory.
func applyRunnerSettings(app *appfile.App, flags *pflag.FlagSet) appfile.Errors {
	var errs appfile.Errors
	for _, s := range app.Runner {
		f := flags.Lookup(s.Key)
		if f == nil || notInFile[s.Key] {
			errs = append(errs, &appfile.Error{File: app.File, Line: s.Line, Msg: fmt.Sprintf("unknown runner option %q in [runner]", s.Key)})
			continue
		}
		if f.Changed {
			continue
		}
		v := s.Value
		if p, ok := v.(string); ok && runnerPaths[s.Key] && p != "-" {
			v = app.Resolve(p)
		}
		if err := appfile.SetOption(flags, s.Key, v); err != nil {
			errs = append(errs, &appfile.Error{File: app.File, Line: s.Line, Msg: "[runner]: " + err.Error()})
			continue
		}
		flags.SetAnnotation(s.Key, fromFileKey, []string{fmt.Sprintf("%s:%d", app.File, s.Line)})
		if len(s.From) > 0 {
			flags.SetAnnotation(s.Key, fromEnvKey, s.From)
		}
	}
	return errs
}

// printCheck shows what would run: the tree and the runner options in
// effect, each with where it came from.
func printCheck(w io.Writer, what string, root service.Service, flags *pflag.FlagSet) {
	fmt.Fprintf(w, "%s: ok\n", what)
	fmt.Fprint(w, service.Tree(root))
	flags.VisitAll(func(f *pflag.Flag) {
		if !f.Changed || notInFile[f.Name] {
			return
		}
		from := "command line"
		if at := f.Annotations[fromFileKey]; len(at) > 0 {
			from = at[0]
		}
		if env := f.Annotations[fromEnvKey]; len(env) > 0 {
			from += ", from " + strings.Join(env, ", ")
		}
		fmt.Fprintf(w, "runner option --%s=%s (%s)\n", f.Name, f.Value, from)
	})
}

// printFromEnv names the plugin options whose values came from the
// environment. Their values are not shown: they may be secrets.
func printFromEnv(w io.Writer, app *appfile.App) {
	for _, s := range app.Services {
		for _, o := range s.Options {
			if len(o.From) > 0 {
				fmt.Fprintf(w, "service %q option --%s from %s (%s:%d)\n", s.Name, o.Key, strings.Join(o.From, ", "), app.File, o.Line)
			}
		}
	}
}

// fromFileKey marks runner flags set from the file with its file:line,
// fromEnvKey those whose value came from the environment with its variables.
const (
	fromFileKey = "twistd_from_file"
	fromEnvKey  = "twistd_from_env"
)

// checkPlugin is --check on a plugin command line: build, open every path
// the plugin's options name, and print.
func checkPlugin(opts *Options, flags, pluginFlags *pflag.FlagSet, name string, build plugins.Build, stdout, stderr io.Writer) error {
	r, err := newRunner(opts, flags, name, stdout, stderr)
	if err != nil {
		return err
	}
	var paths []pathCheck
	pluginFlags.VisitAll(func(f *pflag.Flag) {
		if use, ok := plugins.PathOf(f); ok && f.Value.String() != "" {
			paths = append(paths, pathCheck{what: name + ": --" + f.Name, path: f.Value.String(), use: use})
		}
	})
	missing, err := checkResources(r.set, flags, paths)
	if err != nil {
		return err
	}
	if err := r.add(name, name, build); err != nil {
		if len(missing) == 0 {
			return err
		}
		// A bad option and missing files: all of them, exit 2.
		return withCode(ExitUsage, append(appfile.Errors{{Msg: err.Error()}}, missing...))
	}
	if len(missing) > 0 {
		return failure(missing)
	}
	printCheck(stdout, name, r.root, flags)
	return nil
}

// checkCommand is `twistd check [FILE]`, the same as -y FILE --check. It
// takes the runner's own flags (runner), so options written after FILE
// are those -y would run with; being the same flags, they set the root's
// values and say they were given.
func checkCommand(opts *Options, runner *pflag.FlagSet, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "check an application file and print its service tree",
		Long: `Checks an application file as -y FILE would before running it (every
problem at once, each with its line; exit 2), then opens every file and
directory the services will open, as the --uid/--gid user where the
service reads it after the privilege drop, and the directories of the
pidfile, log and profiles (every problem at once; exit 1). With no
problem it prints the service tree and the runner options in effect,
saying whether each came from the file or the command line, names the
environment variable of each value written as ${VAR} or ${VAR:-default}
(without the value of a plugin option: it may be a secret), and exits 0.
The same as twistd -y FILE --check: every runner option may follow FILE
too, and one given on the command line wins over the file
(twistd check app.toml --grace 1s). twistd --check PLUGIN [options]
checks a plugin command line alike.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("check: give one application file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Application = args[0]
			}
			if opts.Application == "" {
				return usageErrorf("check: no application file given")
			}
			opts.Check = true
			return runApplication(opts, cmd.Root().Flags(), stdout, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	runner.VisitAll(func(f *pflag.Flag) {
		if !notInFile[f.Name] {
			cmd.Flags().AddFlag(f)
		}
	})
	cmd.Flags().BoolP("help", "h", false, "show this help")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return pluginUsageErrorf("check", "%s", flagMessage(err))
	})
	cmd.SetUsageTemplate(commandUsage)
	return cmd
}

// errorLines returns the problems of a multi-problem error, one per line.
func errorLines(err error) ([]string, bool) {
	var ml interface{ Lines() []string }
	if errors.As(err, &ml) {
		return ml.Lines(), true
	}
	return nil, false
}
