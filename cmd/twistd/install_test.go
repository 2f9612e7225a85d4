package main

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// installCmd runs a command of the install test, bounded in time, and
// fails the test with its output when it fails.
func installCmd(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 && name != "make" {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// make install into a staging directory (DESTDIR) installs the binary, the
// man pages, completion for three shells, the poem and the systemd units
// with the paths of PREFIX written in. Once the staged tree is where PREFIX
// says (a symbolic link, as a package manager would unpack it), the units
// pass systemd-analyze verify against the installed binary and man page,
// and every page renders.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds the binary with make")
	}
	for _, tool := range []string{"make", "install", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s not installed (Debian package make, coreutils, sed)", tool)
		}
	}
	tmp := t.TempDir()
	stage, prefix := filepath.Join(tmp, "stage"), filepath.Join(tmp, "prefix")
	vars := []string{"DESTDIR=" + stage, "PREFIX=" + prefix, "BIN=" + filepath.Join(tmp, "build", "twistd")}
	installCmd(t, nil, "make", append([]string{"-s", "-C", "../..", "install"}, vars...)...)
	if err := os.Symlink(filepath.Join(stage, prefix), prefix); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(prefix, "bin", "twistd")
	if out := installCmd(t, nil, bin, "--version"); !bytes.HasPrefix(out, []byte("twistd ")) {
		t.Errorf("installed twistd --version: %q", out)
	}
	for shell, path := range map[string]string{
		"bash": "share/bash-completion/completions/twistd",
		"zsh":  "share/zsh/site-functions/_twistd",
		"fish": "share/fish/vendor_completions.d/twistd.fish",
	} {
		got, err := os.ReadFile(filepath.Join(prefix, path))
		if err != nil {
			t.Errorf("%s completion: %v", shell, err)
			continue
		}
		if want := installCmd(t, nil, bin, "completion", shell); len(got) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, not what the installed binary's `completion %s` prints", path, len(got), shell)
		}
	}

	// bash-completion finds the script by itself where XDG_DATA_DIRS says
	// (by default /usr/local/share:/usr/share), with nothing sourced by hand.
	if lib := "/usr/share/bash-completion/bash_completion"; executable("/bin/bash") && fileExists(lib) {
		script := `source ` + lib + ` && __load_completion twistd && complete -p twistd`
		out := installCmd(t, []string{"HOME=" + tmp, "XDG_DATA_DIRS=" + filepath.Join(prefix, "share")}, "/bin/bash", "-c", script)
		if !bytes.Contains(out, []byte("__start_twistd")) {
			t.Errorf("bash-completion did not load the installed script: %q", out)
		}
	}

	pages, _ := filepath.Glob("../../man/*.1")
	man, manErr := exec.LookPath("man")
	for _, p := range pages {
		installed := filepath.Join(prefix, "share/man/man1", filepath.Base(p))
		want, _ := os.ReadFile(p)
		if got, err := os.ReadFile(installed); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not installed as man/%s (%v)", installed, filepath.Base(p), err)
			continue
		}
		if manErr != nil {
			continue
		}
		out := installCmd(t, []string{"MANWIDTH=80", "MANPAGER=cat", "PAGER=cat"}, man, "-l", installed)
		title := strings.ToUpper(strings.TrimSuffix(filepath.Base(p), ".1")) + "(1)"
		if !bytes.HasPrefix(bytes.TrimSpace(out), []byte(title)) {
			t.Errorf("man -l %s: not headed %s:\n%.200s", installed, title, out)
		}
	}
	if manErr == nil {
		// Installed where man looks for pages of this PREFIX.
		out := installCmd(t, []string{"MANPATH=" + filepath.Join(prefix, "share/man"), "MANWIDTH=80", "MANPAGER=cat"}, man, "twistd-stop")
		if !bytes.HasPrefix(bytes.TrimSpace(out), []byte("TWISTD-STOP(1)")) {
			t.Errorf("man twistd-stop with MANPATH of the install: %.200s", out)
		}
	}

	units, _ := filepath.Glob(filepath.Join(prefix, "lib/systemd/system/*"))
	shipped, _ := filepath.Glob("../../configs/systemd/*")
	if len(units) != len(shipped) || len(units) == 0 {
		t.Fatalf("installed units %v, shipped %v", units, shipped)
	}
	for _, u := range units {
		b, _ := os.ReadFile(u)
		if bytes.Contains(b, []byte(stage)) || bytes.Contains(b, []byte("/usr/local/")) {
			t.Errorf("%s names the staging directory or /usr/local, not PREFIX %s:\n%s", u, prefix, b)
		}
		for _, m := range regexp.MustCompile(`(?m)^ExecStart=(\S+) .*--poem (\S+)`).FindAllSubmatch(b, -1) {
			if string(m[1]) != bin {
				t.Errorf("%s: ExecStart runs %s, want the installed %s", u, m[1], bin)
			}
			if _, err := os.Stat(string(m[2])); err != nil {
				t.Errorf("%s: the poem it names is not installed: %v", u, err)
			}
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipped the verify step: systemd-analyze not installed (Debian package systemd)")
	}
	// The Documentation= check finds twistd(1) through MANPATH.
	installCmd(t, []string{"MANPATH=" + filepath.Join(prefix, "share/man")}, analyze, append([]string{"verify"}, units...)...)

	installCmd(t, nil, "make", append([]string{"-s", "-C", "../..", "uninstall"}, vars...)...)
	filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("make uninstall left %s", path)
		}
		return nil
	})
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The shipped units listen on loopback only and hold no secret: a unit is
// copied as it is, and a bare port in ListenStream= or --iface 0.0.0.0
// would put the poem on every interface.
func TestUnitsListenOnLoopback(t *testing.T) {
	units, _ := filepath.Glob("../../configs/systemd/*")
	if len(units) == 0 {
		t.Fatal("no units in configs/systemd")
	}
	loopback := func(host string) bool {
		ip := net.ParseIP(host)
		return host == "localhost" || ip != nil && ip.IsLoopback()
	}
	secret := regexp.MustCompile(`(?i)password|passwd|secret|token|credential`)
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(line, "#") {
				continue
			}
			if secret.MatchString(line) {
				t.Errorf("%s:%d looks like a secret: %s", u, n, line)
			}
			if v, ok := strings.CutPrefix(line, "ListenStream="); ok {
				host, _, err := net.SplitHostPort(v)
				if err != nil || !loopback(host) {
					t.Errorf("%s:%d: ListenStream=%s is not a loopback address:port", u, n, v)
				}
			}
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				f := strings.Fields(v)
				for i, a := range f {
					if a == "--iface" && (i+1 == len(f) || !loopback(f[i+1])) {
						t.Errorf("%s:%d: %s", u, n, line)
					}
					if a != "--port" || i+1 == len(f) || strings.HasPrefix(f[i+1], "systemd:") {
						continue
					}
					if _, iface, ok := strings.Cut(f[i+1], "interface="); ok {
						if iface, _, _ = strings.Cut(iface, ":"); !loopback(iface) {
							t.Errorf("%s:%d: --port %s is not on loopback", u, n, f[i+1])
						}
					} else if !slices.Contains(f, "--iface") {
						t.Errorf("%s:%d: --port without --iface 127.0.0.1: %s", u, n, line)
					}
				}
			}
		}
		f.Close()
	}
}
