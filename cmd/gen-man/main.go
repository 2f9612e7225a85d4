// Command gen-man writes the man pages of the twistd command tree
// (twistd.1 and one page per subcommand) into a directory: `make man`.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/app"
	"github.com/twistd-go/twistd/internal/plugins"
	_ "github.com/twistd-go/twistd/internal/plugins/all"
)

// defaultDate keeps the pages byte-identical between runs, so a test can
// tell a stale page from a fresh one; SOURCE_DATE_EPOCH overrides it.
var defaultDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

func main() {
	dir := "man"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := generate(dir, app.NewRootCommand(io.Discard, io.Discard)); err != nil {
		fmt.Fprintln(os.Stderr, "gen-man:", err)
		os.Exit(1)
	}
}

// generate writes the pages of root's tree, as the runner builds it, into dir.
func generate(dir string, root *cobra.Command) error {
	date := defaultDate
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		date = time.Unix(n, 0).UTC()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.Long = app.Manual
	root.DisableAutoGenTag = true
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// Generated shell plumbing: twistd(1) and --help mention it.
			root.RemoveCommand(c)
		}
	}
	setSynopses(root)
	// No Title: cobra then titles each page by its command path
	// (TWISTD-STOP for twistd stop), so every page has its own name.
	return doc.GenManTree(root, &doc.GenManHeader{
		Section: "1",
		Date:    &date,
		Source:  "twistd",
		Manual:  "twistd manual",
	}, dir)
}

// setSynopses writes each page's SYNOPSIS line. Runner options go before a
// plugin's name, so a plugin's line shows both kinds; a command such as
// stop, or one below a plugin, takes only its own options (and keeps its
// arguments: check [FILE]). cobra prints a child's synopsis as the root's
// name followed by the child's Use with its name replaced by the display
// name, which is how "[runner options]" gets in front of the plugin name.
func setSynopses(root *cobra.Command) {
	root.Use = "twistd [runner options] PLUGIN [plugin options]"
	root.DisableFlagsInUseLine = true
	for _, c := range root.Commands() {
		if _, plugin := plugins.Lookup(c.Name()); !plugin {
			setCommandSynopses(c)
			continue
		}
		c.DisableFlagsInUseLine = true
		c.Use = strings.TrimSpace(c.Name() + " [plugin options] " + argsOf(c))
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[cobra.CommandDisplayNameAnnotation] = "[runner options] " + c.Name()
		for _, sub := range c.Commands() {
			setCommandSynopses(sub)
		}
	}
}

// setCommandSynopses gives c and the commands below it the synopsis
// "NAME [options] ARGS" ("[options]" only when there are some).
func setCommandSynopses(c *cobra.Command) {
	c.DisableFlagsInUseLine = true
	use := c.Name()
	if hasOptions(c) {
		use += " [options]"
	}
	c.Use = strings.TrimSpace(use + " " + argsOf(c))
	for _, sub := range c.Commands() {
		setCommandSynopses(sub)
	}
}

// argsOf is what c's Use says after the command's name: "[FILE]".
func argsOf(c *cobra.Command) string {
	return strings.TrimSpace(strings.TrimPrefix(c.Use, c.Name()))
}

// hasOptions tells whether c takes a flag of its own besides --help.
func hasOptions(c *cobra.Command) bool {
	found := false
	c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			found = true
		}
	})
	return found
}
