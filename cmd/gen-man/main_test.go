package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The checked-in pages are what the command tree generates now: this fails
// after a flag, plugin or help text changed without `make man`.
func TestManPagesUpToDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := t.TempDir()
	if err := generate(dir); err != nil {
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

// man(1) renders the page without complaint.
func TestManPageRenders(t *testing.T) {
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("skipped: man not installed (Debian packages man-db, groff-base)")
	}
	cmd := exec.Command(man, "-l", "../../man/twistd.1")
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man -l: %v\n%s", err, stderr.String())
	}
	for _, s := range []string{"SYNOPSIS", "twistd [options] PLUGIN [plugin options]", "--pidfile", "SIGUSR1", "EXIT STATUS"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("rendered page lacks %q", s)
		}
	}
}
