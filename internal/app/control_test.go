package app_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// ctl runs a control command and checks its exit code and that its output
// matches the pattern.
func ctl(t *testing.T, dir string, wantCode int, pattern string, args ...string) string {
	t.Helper()
	code, stdout, stderr := testutil.Run(t, dir, 20*time.Second, args...)
	out := stdout + stderr
	if code != wantCode || !regexp.MustCompile(pattern).MatchString(out) {
		t.Fatalf("twistd %s: exit %d, want %d; output:\n%s\nwant match: %s", strings.Join(args, " "), code, wantCode, out, pattern)
	}
	return out
}

func TestStatusAndStopDaemon(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.txt"), []byte("a poem\n"), 0o644)
	pidPath := regexp.QuoteMeta(filepath.Join(dir, "p.pid"))

	ctl(t, dir, 3, `^twistd is not running \(no pidfile `+pidPath+`\)\n$`, "status", "--pidfile", "p.pid")
	ctl(t, dir, 0, `^twistd is not running \(no pidfile `+pidPath+`\)\n$`, "stop", "--pidfile", "p.pid")

	pid := startDaemon(t, dir, filepath.Join(dir, "p.pid"), "--pidfile", "p.pid", "--logfile", "d.log", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "p.txt")
	ctl(t, dir, 0, fmt.Sprintf(`^twistd is running: pid %d, up \d+s, plugin fastpoetry\n$`, pid), "status", "--pidfile", "p.pid")
	// From elsewhere, with --rundir as the runner takes it.
	ctl(t, t.TempDir(), 0, fmt.Sprintf(`^twistd is running: pid %d,`, pid), "status", "--rundir", dir, "--pidfile", "p.pid")
	ctl(t, t.TempDir(), 0, fmt.Sprintf(`^twistd is running: pid %d,`, pid), "status", "-d", dir, "--pidfile", "p.pid")
	// The runner's own --pidfile before the command works too.
	ctl(t, dir, 0, fmt.Sprintf(`^twistd is running: pid %d,`, pid), "--pidfile", "p.pid", "status")

	out := ctl(t, dir, 0, fmt.Sprintf(`^stopped twistd \(pid %d\) in \d+\.\d\ds\n$`, pid), "stop", "--pidfile", "p.pid")
	t.Log(strings.TrimSpace(out))
	if alive(pid) {
		t.Errorf("pid %d still exists after stop", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "p.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pidfile still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "d.log")); !strings.Contains(string(b), "received SIGTERM, shutting down") || !strings.Contains(string(b), "[-] shut down\n") {
		t.Errorf("log lacks a clean shutdown:\n%s", b)
	}
	ctl(t, dir, 3, `^twistd is not running`, "status", "--pidfile", "p.pid")
}

func TestStalePidfiles(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	pidfile := filepath.Join(dir, "twistd.pid")
	for _, c := range []struct {
		content, why string
	}{
		{fmt.Sprintf("%d\n", deadPid), fmt.Sprintf("stale: pid %d does not exist", deadPid)},
		// A live process that holds no lock (here: this test) is not
		// the daemon, and stop must not signal it.
		{fmt.Sprintf("%d\n", os.Getpid()), fmt.Sprintf("stale: pid %d runs but is not the daemon that wrote it", os.Getpid())},
		{"", "stale: it names no pid"},
	} {
		os.WriteFile(pidfile, []byte(c.content), 0o644)
		ctl(t, dir, 1, `^twistd is not running, but its pidfile `+regexp.QuoteMeta(pidfile)+` remains \(`+regexp.QuoteMeta(c.why)+`\)\n$`, "status")
		ctl(t, dir, 0, `^twistd is not running; removed its pidfile `+regexp.QuoteMeta(pidfile)+` \(`+regexp.QuoteMeta(c.why)+`\)\n$`, "stop")
		if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale pidfile not removed: %v", err)
		}
		ctl(t, dir, 3, `^twistd is not running \(no pidfile`, "status")
	}
}

// A file that is not a pidfile is never removed nor written: stop and
// status say what is in the way and exit 4, a start fails with one line.
func TestNotAPidfileUntouched(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	hosts := "127.0.0.1 localhost\n::1 localhost\n"
	other := filepath.Join(dir, "x")
	os.WriteFile(other, []byte(hosts), 0o640)
	link := filepath.Join(dir, "link.pid")
	os.Symlink(other, link)
	for _, path := range []string{other, link} {
		why := "holds something other than a pid; not a pidfile, leaving it alone"
		if path == link {
			why = "is a symbolic link; refusing to follow it"
		}
		want := `^twistd: pidfile ` + regexp.QuoteMeta(path+" "+why) + `\n$`
		ctl(t, dir, 4, want, "stop", "--pidfile", path)
		ctl(t, dir, 4, want, "status", "--pidfile", path)
		code, _, stderr := testutil.Run(t, dir, 20*time.Second, "-n", "--pidfile", path, "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
		if code != 1 || !regexp.MustCompile(want).MatchString(stderr) {
			t.Errorf("start with --pidfile %s: exit %d, stderr %q; want 1 and %s", path, code, stderr, want)
		}
		if b, err := os.ReadFile(other); err != nil || string(b) != hosts {
			t.Fatalf("%s changed: %q, %v", other, b, err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o640 && path == other {
			t.Fatalf("%s: %v %v", path, fi.Mode(), err)
		}
	}
}

// TestStopTimeoutAndKill stops an application daemon that cannot answer
// (SIGSTOPped): stop gives up after --timeout, and --kill ends it. The
// pidfile comes from the application file.
func TestStopTimeoutAndKill(t *testing.T) {
	dir, _ := exampleCopy(t, "two-poems.toml")
	pid := startDaemon(t, dir, filepath.Join(dir, "poetry.pid"), "-y", "two-poems.toml")
	ctl(t, dir, 0, fmt.Sprintf(`^twistd is running: pid %d, up \d+s, application poetry \(two-poems.toml\)\n$`, pid), "-y", "two-poems.toml", "status")

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctl(t, dir, 1, fmt.Sprintf(`^twistd: pid %d still running 300ms after SIGTERM \(--kill sends SIGKILL\)\n$`, pid), "-y", "two-poems.toml", "stop", "--timeout", "300ms")
	if !alive(pid) {
		t.Fatal("daemon gone without --kill")
	}
	ctl(t, dir, 0, `^twistd is running`, "-y", "two-poems.toml", "status")

	// Gone is what stop was asked for: exit 0, as start-stop-daemon.
	ctl(t, dir, 0, fmt.Sprintf(`^killed twistd \(pid %d\) with SIGKILL: it did not stop within 300ms after SIGTERM\n(removed the pidfile .* it left behind\n)?$`, pid), "-y", "two-poems.toml", "stop", "--timeout", "300ms", "--kill")
	if alive(pid) {
		t.Error("daemon survived --kill")
	}
	if _, err := os.Stat(filepath.Join(dir, "poetry.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed daemon's pidfile was not removed: %v", err)
	}
	ctl(t, dir, 3, `^twistd is not running`, "-y", "two-poems.toml", "status")
}

func TestStopUsage(t *testing.T) {
	dir := t.TempDir()
	ctl(t, dir, 2, `^twistd: stop: --timeout must be positive`, "stop", "--timeout", "0s")
	ctl(t, dir, 2, `^twistd: unknown command "x" for "twistd stop"|^twistd: .*x`, "stop", "x")
	ctl(t, dir, 2, `^twistd: status: no pidfile`, "--pidfile", "", "status")
}

// TestStopWaitsForProfiles: a daemon writes its profiles after removing
// its pidfile; stop returns only once the process is gone, so both files
// are complete when it does.
func TestStopWaitsForProfiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.txt"), []byte("a poem\n"), 0o644)
	port := testutil.FreePort(t)
	startDaemon(t, dir, filepath.Join(dir, "twistd.pid"), "--profile", "cpu.pprof", "--profile-mem", "mem.pprof",
		"fastpoetry", "--port", fmt.Sprint(port), "--iface", "127.0.0.1", "--poem", "p.txt")
	for range 20 {
		fetch(t, addr(port))
	}
	ctl(t, dir, 0, `^stopped twistd`, "stop")
	checkProfiles(t, dir)
}
