// Package app is the runner (twisted.scripts.twistd): the command line,
// runner options and the one lifecycle every plugin runs through.
package app

import (
	"errors"
	"fmt"
	"io"
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
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
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
	if code == ExitUsage {
		msg += " (see " + helpOf(err) + " --help)"
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
		Use:               "twistd",
		Short:             "run network plugins as Unix daemons",
		Version:           version(),
		TraverseChildren:  true,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown plugin %q", args[0])
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

	for _, m := range plugins.All() {
		root.AddCommand(pluginCommand(m, opts, stdout, stderr))
	}
	root.AddCommand(checkCommand(opts, stdout, stderr), stopCommand(opts, stdout, stderr), statusCommand(opts, stdout, stderr))
	// cobra's own completion command, described in the voice of the others.
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Short = "print a shell completion script (bash, zsh, fish, powershell)"
	}
	return root
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
				return checkPlugin(opts, cmd.Root().Flags(), m.Name, build, stdout, stderr)
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

func flagError(_ *cobra.Command, err error) error {
	return usageErrorf("%s", flagMessage(err))
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
