// Command gen-man writes the man pages of the twistd command tree
// (twistd.1 and one page per subcommand) into a directory: `make man`.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/twistd-go/twistd/internal/app"
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
	if err := generate(dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen-man:", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
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
	root := app.NewRootCommand(io.Discard, io.Discard)
	root.Long = app.Manual
	root.Use = "twistd [options] PLUGIN [plugin options]"
	root.DisableFlagsInUseLine = true
	root.DisableAutoGenTag = true
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// Generated shell plumbing: twistd(1) and --help mention it.
			root.RemoveCommand(c)
			continue
		}
		c.Use = c.Name() + " [plugin options]"
		c.DisableFlagsInUseLine = true
	}
	return doc.GenManTree(root, &doc.GenManHeader{
		Title:   "TWISTD",
		Section: "1",
		Date:    &date,
		Source:  "twistd",
		Manual:  "twistd manual",
	}, dir)
}
