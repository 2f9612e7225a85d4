package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/twistd-go/twistd/internal/app"
	"github.com/twistd-go/twistd/internal/plugins"
)

// The checked-in pages are what the command tree generates now: this fails
// after a flag, plugin or help text changed without `make man`.
func TestManPagesUpToDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := t.TempDir()
	if err := generate(dir, app.NewRootCommand(io.Discard, io.Discard)); err != nil {
		t.Fatal(err)
	}
	fresh, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	stored, _ := filepath.Glob("../../man/*.1")
	if len(fresh) != len(stored) {
		t.Errorf("man/ holds %d pages, the command tree makes %d: run make man", len(stored), len(fresh))
	}
	for _, f := range fresh {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("../../man", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("man/%s is stale or missing: run make man", filepath.Base(f))
		}
	}
}

var (
	thLine       = regexp.MustCompile(`(?m)^\.TH "([^"]*)" "1" `)
	synopsisLine = regexp.MustCompile(`(?m)^\.SH SYNOPSIS\n\\fB(.*)\\fP$`)
)

// wantSynopsis is the synopsis of the page for command name (twistd for
// the root page).
func wantSynopsis(name string) string {
	switch _, plugin := plugins.Lookup(name); {
	case name == "twistd":
		return "twistd [runner options] PLUGIN [plugin options]"
	case plugin:
		return "twistd [runner options] " + name + " [plugin options]"
	case name == "stop", name == "status":
		return "twistd " + name + " [options]"
	case name == "check":
		return "twistd check [options] [FILE]" // the runner options, as with -y
	}
	return ""
}

// checkPage checks that page (a file twistd-NAME.1) is titled after its
// command and shows that command's synopsis, and returns the synopsis.
func checkPage(t *testing.T, page string) string {
	t.Helper()
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(filepath.Base(page), ".1")
	if m := thLine.FindSubmatch(b); m == nil || string(m[1]) != strings.ToUpper(base) {
		t.Errorf("%s: title %q, want %q", page, m, strings.ToUpper(base))
	}
	m := synopsisLine.FindSubmatch(b)
	if m == nil {
		t.Errorf("%s: no SYNOPSIS", page)
		return ""
	}
	return string(m[1])
}

// Each shipped page is titled after its own command (TWISTD-STOP, not
// TWISTD) and shows that command's synopsis: runner and plugin options for
// a plugin, a command's own options for stop and status.
func TestManPagesNameTheirCommand(t *testing.T) {
	pages, _ := filepath.Glob("../../man/*.1")
	if len(pages) < 5 {
		t.Fatalf("man/ holds %d pages", len(pages))
	}
	for _, p := range pages {
		name := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(p), ".1"), "twistd-")
		got := checkPage(t, p)
		if want := wantSynopsis(name); want != "" && got != want {
			t.Errorf("%s: synopsis %q, want %q", p, got, want)
		}
		if _, plugin := plugins.Lookup(name); !plugin && name != "twistd" && strings.Contains(got, "plugin options") {
			t.Errorf("%s: synopsis %q offers plugin options", p, got)
		}
	}
}

// A command added to the runner's tree later (version, reload) gets its own
// page with its own title and synopsis, with nothing to add to gen-man.
func TestNewCommandGetsItsPage(t *testing.T) {
	root := app.NewRootCommand(io.Discard, io.Discard)
	root.AddCommand(&cobra.Command{Use: "version", Short: "print the version", Run: func(*cobra.Command, []string) {}})
	reload := &cobra.Command{Use: "reload [FILE]", Short: "reload", Run: func(*cobra.Command, []string) {}}
	reload.Flags().String("pidfile", "", "the pidfile")
	root.AddCommand(reload)
	ftp, _, err := root.Find([]string{"ftp-lite"})
	if err != nil {
		t.Fatal(err)
	}
	passwd := &cobra.Command{Use: "passwd USER", Short: "write a password file entry", Run: func(*cobra.Command, []string) {}}
	passwd.Flags().String("file", "", "the password file")
	ftp.AddCommand(passwd)
	dir := t.TempDir()
	if err := generate(dir, root); err != nil {
		t.Fatal(err)
	}
	for page, want := range map[string]string{
		"twistd-version.1":         "twistd version",
		"twistd-reload.1":          "twistd reload [options] [FILE]",
		"twistd-ftp-lite-passwd.1": "twistd ftp-lite passwd [options] USER",
		"twistd-ftp-lite.1":        "twistd [runner options] ftp-lite [plugin options]",
	} {
		if got := checkPage(t, filepath.Join(dir, page)); got != want {
			t.Errorf("%s: synopsis %q, want %q", page, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "twistd-completion.1")); err == nil {
		t.Error("twistd-completion.1 written: the completion command has no page")
	}
}

// man(1) renders every page without complaint, headed by its own title.
func TestManPagesRender(t *testing.T) {
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("skipped: man not installed (Debian packages man-db, groff-base)")
	}
	pages, _ := filepath.Glob("../../man/*.1")
	for _, p := range pages {
		out := renderMan(t, man, p)
		title := strings.ToUpper(strings.TrimSuffix(filepath.Base(p), ".1")) + "(1)"
		if first, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); !strings.HasPrefix(first, title) {
			t.Errorf("%s renders headed %q, want %s", p, first, title)
		}
		if filepath.Base(p) == "twistd.1" {
			for _, s := range []string{"SYNOPSIS", "twistd [runner options] PLUGIN [plugin options]", "--pidfile", "SIGUSR1", "EXIT STATUS"} {
				if !strings.Contains(out, s) {
					t.Errorf("rendered twistd.1 lacks %q", s)
				}
			}
		}
	}
}

// renderMan renders page as man -l does for a reader, and fails on any
// complaint of man or groff.
func renderMan(t *testing.T, man, page string) string {
	t.Helper()
	cmd := exec.Command(man, "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l %s: %v\n%s", page, err, stderr.String())
	}
	return string(out)
}
