package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(target, filepath.Join(dir, "link"))
	os.Link(target, filepath.Join(dir, "hard"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	for name, want := range map[string]string{
		"link": "is a symbolic link",
		"hard": "has 2 hard links",
		"fifo": "is not a regular file", // and the open must not block
		"sub":  "not a regular file",
	} {
		f, _, err := OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil {
			f.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !errors.Is(err, ErrNotOurs) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "secret\n" {
		t.Errorf("target changed: %q", b)
	}
}

func TestWalkFollowsOnlyTrustedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory another user owns")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o755)
	// A link root made in a root-owned directory is followed (/var/run -> /run).
	if err := os.Symlink(real, filepath.Join(dir, "run")); err != nil {
		t.Fatal(err)
	}
	f, d, err := OpenFile(filepath.Join(dir, "run", "x.pid"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("trusted link: %v", err)
	}
	f.Close()
	d.Close()
	if _, err := os.Stat(filepath.Join(real, "x.pid")); err != nil {
		t.Fatal(err)
	}

	// The same link in a directory nobody owns is refused.
	given := filepath.Join(dir, "given")
	os.Mkdir(given, 0o755)
	os.Chown(given, nobody, nobody)
	os.Symlink(real, filepath.Join(given, "run"))
	os.Lchown(filepath.Join(given, "run"), nobody, nobody)
	_, _, err = OpenFile(filepath.Join(given, "run", "x.pid"), os.O_RDWR|os.O_CREATE, 0o644)
	if err == nil || !strings.Contains(err.Error(), "other users can write") {
		t.Fatalf("untrusted link: %v", err)
	}

	// A sticky world-writable directory: another user's link is refused,
	// root's own is followed.
	sticky := filepath.Join(dir, "tmp")
	os.Mkdir(sticky, 0o777|os.ModeSticky)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	os.Symlink(real, filepath.Join(sticky, "theirs"))
	os.Lchown(filepath.Join(sticky, "theirs"), nobody, nobody)
	if _, _, err := OpenFile(filepath.Join(sticky, "theirs", "x.pid"), os.O_RDONLY, 0); err == nil {
		t.Fatal("followed another user's link in a sticky directory")
	}
	os.Symlink(real, filepath.Join(sticky, "mine"))
	f, d, err = OpenFile(filepath.Join(sticky, "mine", "x.pid"), os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("own link in sticky directory: %v", err)
	}
	f.Close()
	d.Close()
}

func TestRemoveOnlyOurs(t *testing.T) {
	dir := t.TempDir()
	f, d, err := OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer f.Close()
	// Replaced by another file: left alone.
	os.Remove(filepath.Join(dir, "a"))
	os.WriteFile(filepath.Join(dir, "a"), []byte("other"), 0o644)
	if err := d.Remove("a", f); err == nil {
		t.Fatal("removed a file that replaced ours")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "other" {
		t.Fatalf("other file changed: %q", b)
	}
	g, err := d.Open("a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := d.Remove("a", g); err != nil {
		t.Fatal(err)
	}
}
