package plugins

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/pflag"
)

func TestReadFileKindsAndSize(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	// A multi-MB poem is read whole; one byte past the limit is refused.
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(big, 3<<20); err != nil || len(b) != 3<<20 {
		t.Fatalf("3 MiB at a 3 MiB limit: %d bytes, %v", len(b), err)
	}
	if _, err := ReadFile(big, 3<<20-1); err == nil || !strings.Contains(err.Error(), "larger than the limit of 3145727 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		fifo:                       "not a regular file (a named pipe)",
		"/dev/zero":                "not a regular file (a character device)",
		dir:                        "not a regular file (a directory)",
		filepath.Join(dir, "none"): "no such file or directory",
	} {
		if _, err := ReadFile(path, 1<<20); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if _, err := Open(big, PathUse{Dir: true}); err == nil || err.Error() != "not a directory" {
		t.Errorf("a file as a directory: %v", err)
	}
	f, err := Open(dir, PathUse{Dir: true})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestMarkPath(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("poem", "", "")
	fs.String("key", "", "")
	fs.String("root", "", "")
	fs.String("port", "", "")
	uses := map[string]PathUse{
		"poem": {Max: 64 << 20},
		"key":  {Early: true, Privileged: true},
		"root": {Dir: true, Early: true},
	}
	for name, use := range uses {
		MarkPath(fs, name, use)
	}
	for name, want := range uses {
		if got, ok := PathOf(fs.Lookup(name)); !ok || got != want {
			t.Errorf("%s: %+v %v, want %+v", name, got, ok, want)
		}
	}
	if _, ok := PathOf(fs.Lookup("port")); ok {
		t.Error("port is marked as a path")
	}
	mustPanic(t, "unknown flag", func() { MarkPath(fs, "nope", PathUse{}) })
}
