package jail

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct{ cwd, arg, want string }{
		{"/", "", "/"},
		{"/", "..", "/"},
		{"/sub", "..", "/"},
		{"/sub", "../../../etc/passwd", "/etc/passwd"},
		{"/sub", "/etc/passwd", "/etc/passwd"},
		{"/sub", "//etc//passwd", "/etc/passwd"},
		{"/sub", "a/./b/../c", "/sub/a/c"},
		{"/", "zwei ü.txt", "/zwei ü.txt"},
	} {
		got, err := Resolve(c.cwd, c.arg)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q", c.cwd, c.arg, got, err, c.want)
		}
	}
	for _, bad := range []string{"a\x00b", "a\rb", "a\nb", "\x7f", "\x1b[31m"} {
		if _, err := Resolve("/", bad); err != ErrBadName {
			t.Errorf("Resolve(%q) = %v, want ErrBadName", bad, err)
		}
	}
	if Rel("/") != "." || Rel("/a/b") != "a/b" {
		t.Fatal("Rel")
	}
}

// FuzzResolve: the name handed to os.Root is always local (no "..", not
// absolute) whatever the client sends.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"..", "../../etc/passwd", "/etc/passwd", "//x", "a/../../b", "\x00", ".../..", "./.", "~root"} {
		f.Add("/sub", s)
	}
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		v, ok := resolveBoth(cwd, arg)
		if !ok {
			return
		}
		if !strings.HasPrefix(v, "/") || HasControl(v) {
			t.Fatalf("virtual %q", v)
		}
		if r := Rel(v); !filepath.IsLocal(r) {
			t.Fatalf("Resolve(%q, %q) -> %q, not local", cwd, arg, r)
		}
	})
}

// FuzzRootOpen opens whatever the client names through an os.Root holding
// symbolic links that point out of it, and checks through /proc that every
// file it opens really is inside the root.
func FuzzRootOpen(f *testing.F) {
	base := f.TempDir()
	rootDir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(rootDir, "sub", "deep"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	os.WriteFile(filepath.Join(rootDir, "sub", "file"), []byte("ok"), 0o644)
	links := map[string]string{
		"up": "..", "out": "../outside", "abs": outside, "etc": "/etc",
		"sub/back": "../..", "sub/inside": "../sub", "sub/deep/loop": "../deep/loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			f.Fatal(err)
		}
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	realRoot, _ := filepath.EvalSymlinks(rootDir)
	for _, s := range []string{"out/secret", "abs/secret", "up/outside/secret", "sub/back/outside/secret",
		"etc/hostname", "sub/inside/file", "../outside/secret", "/sub/file", "sub/deep/loop"} {
		f.Add("/", s)
	}
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		v, ok := resolveBoth(cwd, arg)
		if !ok {
			return
		}
		file, err := root.Open(Rel(v))
		if err != nil {
			return
		}
		defer file.Close()
		where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(file.Fd())))
		if err != nil {
			t.Skip("no /proc")
		}
		if where != realRoot && !strings.HasPrefix(where, realRoot+"/") {
			t.Fatalf("%q (cwd %q) opened %s, outside %s", arg, cwd, where, realRoot)
		}
	})
}

// resolveBoth resolves a fuzzed current directory, then arg inside it.
func resolveBoth(cwd, arg string) (string, bool) {
	cwd, err := Resolve("/", cwd)
	if err != nil {
		return "", false
	}
	v, err := Resolve(cwd, arg)
	return v, err == nil
}
