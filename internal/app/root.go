// Package app is the runner (twisted.scripts.twistd): the command line,
// runner options and the one lifecycle every plugin runs through.
package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/plugins"
)

// Version is set at link time (-X); otherwise the module version is used.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return buildVersion(bi)
}

var pseudoVersion = regexp.MustCompile(`-(0\.)?\d{14}-[0-9a-f]{12}(\+dirty)?$`)

// buildVersion is the version a plain `go build` or `go install` records:
// the module version when built from a tagged module, else "dev" with the
// VCS revision the go command stamped ("dev (741818a, modified)").
func buildVersion(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	// Since Go 1.24 a build from a checkout is stamped with a pseudo-version
	// (v0.0.0-20261204191032-947ed86c356f+dirty), which names no release.
	if v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
		if base, ok := strings.CutSuffix(v, "+dirty"); ok {
			return base + " (modified)"
		}
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	rev = rev[:min(len(rev), 7)]
	if modified == "true" {
		return "dev (" + rev + ", modified)"
	}
	return "dev (" + rev + ")"
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(joinRunnerValues(root.Flags(), args))
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	code := codeOf(err)
	if errors.Is(err, errQuiet) {
		return code
	}
	if lines, ok := errorLines(err); ok {
		for _, l := range lines {
			fmt.Fprintf(stderr, "twistd: %s\n", l)
		}
		return code
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	var inv *pflag.InvalidValueError
	if errors.As(err, &inv) && !strings.Contains(msg, ": invalid value ") {
		// Runner flags parsed while traversing skip cobra's FlagErrorFunc.
		msg = flagMessage(err)
	}
	if help := helpOf(err); code == ExitUsage && help != noHelp {
		msg += " (see " + help + " --help)"
	}
	fmt.Fprintf(stderr, "twistd: %s\n", msg)
	return code
}

const rootUsage = `Usage:
  twistd [options] PLUGIN [plugin options]
  twistd [options] -y APPLICATION.toml
  twistd COMMAND [command options]

Runs a compiled-in network plugin as a Unix daemon (or in the foreground
with --nodaemon). Runner options go before the plugin name, the plugin's
options after it. An application file runs several services at once.

Options:
{{.LocalFlags.FlagUsages}}
Plugins:
{{range .Commands}}{{if eq .GroupID "plugins"}}  {{rpad .Name .NamePadding}} {{.Short}}
{{end}}{{end}}
Commands:
{{range .Commands}}{{if and .IsAvailableCommand (ne .GroupID "plugins")}}  {{rpad .Name .NamePadding}} {{.Short}}
{{end}}{{end}}
"twistd PLUGIN --help" shows a plugin's options.
`

const pluginUsage = `Usage:
  twistd [options] {{.Name}} [plugin options]
{{with .Long}}
{{.}}
{{end}}
Options of {{.Name}}:
{{.LocalFlags.FlagUsages}}
Runner options go before "{{.Name}}" (see twistd --help).
`

// NewRootCommand builds the command tree: the runner's flags on the root,
// one subcommand per registered plugin. Runner flags are root-local and
// parsed with TraverseChildren, so they are only valid before the plugin
// name and a plugin's -p never collides with a runner flag.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	opts := &Options{}
	root := &cobra.Command{
		Use:                        "twistd",
		Short:                      "run network plugins as Unix daemons",
		Version:                    version(),
		TraverseChildren:           true,
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true,
		SilenceErrors:              true,
		CompletionOptions:          cobra.CompletionOptions{HiddenDefaultCmd: false},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownPlugin(cmd, args[0])
			}
			return nil
		},
		// Runner flags are parsed on the way to a subcommand, so --help and
		// --version before a plugin name must be honoured here, before the
		// plugin runs.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			rf := cmd.Root().Flags()
			switch {
			case rf.Changed("help"):
				cmd.SetOut(stdout)
				cmd.Help()
				return withCode(ExitOK, errQuiet)
			case rf.Changed("version"):
				printVersion(stdout)
				return withCode(ExitOK, errQuiet)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Application != "" {
				return runApplication(opts, cmd.Flags(), stdout, stderr)
			}
			cmd.SetOut(stderr)
			cmd.Usage()
			return usageErrorf("no plugin given")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("twistd (the Go twistd) {{.Version}}\n")
	root.SetUsageTemplate(rootUsage)
	root.SetHelpTemplate("{{.UsageString}}")
	root.SetFlagErrorFunc(flagError)
	root.AddGroup(&cobra.Group{ID: "plugins", Title: "Plugins:"})
	opts.register(root.Flags())
	opts.registerApp(root.Flags())
	root.Flags().BoolP("help", "h", false, "show this help")
	root.Flags().Bool("version", false, "show the version")
	registerCompletions(root)

	for _, m := range plugins.All() {
		root.AddCommand(pluginCommand(m, opts, stdout, stderr))
	}
	root.AddCommand(checkCommand(opts, root.Flags(), stdout, stderr), stopCommand(opts, stdout, stderr), statusCommand(opts, stdout, stderr), reloadCommand(opts, stdout, stderr), versionCommand(stdout))
	// cobra's own completion command, described in the voice of the others.
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Short = "print a shell completion script (bash, zsh, fish, powershell)"
	}
	return root
}

// registerCompletions tells the shells what the runner's values are:
// application files are TOML, --uid and --gid take user and group names.
func registerCompletions(root *cobra.Command) {
	root.RegisterFlagCompletionFunc("application", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"toml"}, cobra.ShellCompDirectiveFilterFileExt
	})
	names := func(file string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(_ *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
			return accountNames(file, prefix), cobra.ShellCompDirectiveNoFileComp
		}
	}
	root.RegisterFlagCompletionFunc("uid", names("/etc/passwd"))
	root.RegisterFlagCompletionFunc("gid", names("/etc/group"))
}

// accountNames lists the names in an /etc/passwd-style file that start
// with prefix. os/user cannot enumerate; NSS-only accounts (LDAP) are
// not offered, but are still accepted.
func accountNames(file, prefix string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		name, _, ok := strings.Cut(line, ":")
		if ok && name != "" && !strings.HasPrefix(name, "#") && !strings.HasPrefix(name, "+") && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out
}

// printVersion prints what --version prints.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "twistd (the Go twistd) %s\n", version())
}

// versionCommand is `twistd version`, the same as --version.
func versionCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			printVersion(stdout)
			return nil
		},
	}
	cmd.SetUsageTemplate(commandUsage)
	return cmd
}

// joinRunnerValues joins a runner flag and a separate value that starts
// with "-" (--uid -5) into one argument (--uid=-5). cobra's traversal
// would otherwise take "-5" for a flag and the plugin name for its value,
// and report the wrong flag. Only the arguments before the plugin name
// are runner options; those after it are left to the plugin's parser.
func joinRunnerValues(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return append(out, args[i:]...)
		}
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			f = fs.Lookup(a[2:])
		case len(a) == 2:
			f = fs.ShorthandLookup(a[1:])
		}
		if f == nil || f.NoOptDefVal != "" || i+1 == len(args) {
			out = append(out, a)
			continue
		}
		if next := args[i+1]; strings.HasPrefix(next, "-") && next != "-" {
			out = append(out, a+"="+next)
		} else {
			out = append(out, a, next)
		}
		i++
	}
	return out
}

func pluginCommand(m *plugins.Maker, opts *Options, stdout, stderr io.Writer) *cobra.Command {
	var build plugins.Build
	cmd := &cobra.Command{
		Use:     m.Name,
		Short:   m.Description,
		Long:    m.Long,
		GroupID: "plugins",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return pluginUsageErrorf(m.Name, "unexpected argument %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Application != "" {
				return usageErrorf("give an application file (-y) or a plugin, not both")
			}
			if missing := plugins.MissingRequired(cmd.Flags()); len(missing) > 0 {
				return pluginUsageErrorf(m.Name, "missing required option %s", strings.Join(missing, ", "))
			}
			if opts.Check {
				return checkPlugin(opts, cmd.Root().Flags(), cmd.Flags(), m.Name, build, stdout, stderr)
			}
			return run(opts, cmd.Root().Flags(), m.Name, build, stdout, stderr)
		},
	}
	cmd.Flags().SortFlags = false
	build = m.Options(cmd.Flags())
	for _, c := range m.Commands {
		cmd.AddCommand(pluginTool(m.Name, c, stdout, stderr))
	}
	cmd.Flags().BoolP("help", "h", false, "show this help")
	cmd.SetUsageTemplate(pluginUsage)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if runner := runnerFlag(c.Root().Flags(), err); runner != "" {
			return usageErrorf("%s: %s is a runner option: put it before %q", m.Name, runner, m.Name)
		}
		return pluginUsageErrorf(m.Name, "%s", flagMessage(err))
	})
	return cmd
}

const pluginToolUsage = `Usage:
  {{.UseLine}}
{{with .Long}}
{{.}}
{{end}}{{if .HasAvailableLocalFlags}}
Options:
{{.LocalFlags.FlagUsages}}{{end}}`

// pluginTool makes a plugin's tool the command `twistd PLUGIN NAME`.
func pluginTool(plugin string, c plugins.Command, stdout, stderr io.Writer) *cobra.Command {
	var run plugins.RunCommand
	name := plugin + " " + c.Name
	cmd := &cobra.Command{
		Use:   c.Name + " [options] " + c.Args,
		Short: c.Short,
		Long:  c.Long,
		// The synopsis above says where the options go.
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != c.NArgs {
				return pluginUsageErrorf(name, "want %s", c.Args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := run(args, cmd.InOrStdin(), stdout, stderr); err != nil {
				return failure(fmt.Errorf("%s: %w", name, err))
			}
			return nil
		},
	}
	run = c.Options(cmd.Flags())
	cmd.Flags().BoolP("help", "h", false, "show this help")
	cmd.SetUsageTemplate(pluginToolUsage)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return pluginUsageErrorf(name, "%s", flagMessage(err))
	})
	return cmd
}

func flagError(cmd *cobra.Command, err error) error {
	// `twistd -n fastpoerty --poem x`: the plugin options fail to parse as
	// runner options only because the plugin name was wrong.
	if args := cmd.Flags().Args(); cmd == cmd.Root() && len(args) > 0 {
		return unknownPlugin(cmd, args[0])
	}
	return usageErrorf("%s", flagMessage(err))
}

func unknownPlugin(root *cobra.Command, name string) error {
	if near := root.SuggestionsFor(name); len(near) > 0 {
		return usageErrorf("unknown plugin %q; did you mean %s?", name, strings.Join(near, " or "))
	}
	return usageErrorf("unknown plugin %q", name)
}

// runnerFlag returns how the user spelled an unknown plugin flag that is
// in fact a runner flag (given after the plugin name), or "".
func runnerFlag(root *pflag.FlagSet, err error) string {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return ""
	}
	switch name := ne.GetSpecifiedName(); {
	case len(name) > 1 && root.Lookup(name) != nil:
		return "--" + name
	case len(name) == 1 && root.ShorthandLookup(name) != nil:
		return "-" + name
	}
	return ""
}

// flagMessage shortens pflag's messages: `invalid argument "x" for "-p,
// --port" flag: strconv.ParseInt: parsing "x": invalid syntax` becomes
// `invalid value "x" for --port: not a number`.
func flagMessage(err error) string {
	var inv *pflag.InvalidValueError
	if errors.As(err, &inv) {
		cause := inv.Unwrap()
		if errors.Is(cause, strconv.ErrSyntax) {
			cause = errors.New("not a number")
		} else if errors.Is(cause, strconv.ErrRange) {
			cause = errors.New("out of range")
		}
		return fmt.Sprintf("invalid value %q for --%s: %v", inv.GetValue(), inv.GetFlag().Name, cause)
	}
	return err.Error()
}
