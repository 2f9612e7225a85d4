package app_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// portOrSkip binds addr briefly to see that it is free.
func portFree(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("skipped: %s is not free here: %v", addr, err)
	}
	ln.Close()
}

// Started as root with --uid nobody --gid nogroup on port 21: the listener
// is bound as root, then real, effective and saved ids are nobody's and
// the supplementary groups are nogroup only. With --euid only the
// effective (and filesystem) ids change.
func TestPrivilegeDrop(t *testing.T) {
	requireRoot(t)
	// 127.0.0.3 keeps clear of anything other tests run on port 21.
	portFree(t, "127.0.0.3:21")
	nobody := []string{"65534", "65534", "65534", "65534"}
	for _, tc := range []struct {
		name     string
		args     []string
		uid, gid []string
	}{
		{"uid and gid", []string{"--uid", "nobody", "--gid", "nogroup"}, nobody, nobody},
		{"euid", []string{"--uid", "nobody", "--euid"}, []string{"0", "65534", "0", "65534"}, []string{"0", "65534", "0", "65534"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := nobodyDir(t)
			writePoem(t, dir)
			pidfile := filepath.Join(dir, "twistd.pid")
			pid := startDaemon(t, dir, pidfile, append(tc.args, "fastpoetry", "--port", "21", "--iface", "127.0.0.3", "--poem", "poem.txt")...)
			for key, want := range map[string][]string{"Uid": tc.uid, "Gid": tc.gid, "Groups": {"65534"}} {
				if got := procIDs(t, pid, key); !slices.Equal(got, want) {
					t.Errorf("%s: %v, want %v (real, effective, saved, fs)", key, got, want)
				}
			}
			if got := fetch(t, "127.0.0.3:21"); got != testPoem {
				t.Fatalf("port 21 served %q", got)
			}
			log := waitFile(t, filepath.Join(dir, "twistd.log"), "uid/gid 65534/65534", 5*time.Second)
			bound, dropped := strings.Index(log, "listening on 127.0.0.3:21"), strings.Index(log, "uid/gid 65534/65534")
			if bound < 0 || bound > dropped {
				t.Errorf("not bound before the drop:\n%s", log)
			}
			stopDaemon(t, pid, pidfile)
		})
	}
}

// A drop that cannot happen is one line and exit 1 with nothing left:
// refused up front when not root; when root lacks CAP_SETGID/CAP_SETUID
// (setpriv), the daemon fails after binding, closes the listener and
// removes its pidfile.
func TestPrivilegeDropFailure(t *testing.T) {
	requireRoot(t)
	dir := nobodyDir(t)
	writePoem(t, dir)
	b, err := os.ReadFile(testutil.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "twistd")
	os.WriteFile(bin, b, 0o755)
	args := []string{"--uid", "daemon", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt"}

	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	p := testutil.StartCmd(t, cmd, dir)
	want := "twistd: cannot drop privileges to uid/gid 1/1: not running as root\n"
	if code := p.Wait(t, 20*time.Second); code != 1 || p.Stderr.String() != want {
		t.Fatalf("as nobody: exit %d, stderr %q; want 1 and %q", code, p.Stderr, want)
	}

	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipped the capability case: setpriv (Debian util-linux) not installed")
	}
	cmd = exec.Command(setpriv, append([]string{"--bounding-set", "-setuid,-setgid", "--", bin}, args...)...)
	p = testutil.StartCmd(t, cmd, dir)
	want = "twistd: cannot drop privileges to uid/gid 1/1: cannot set groups [1]: operation not permitted\n"
	if code := p.Wait(t, 20*time.Second); code != 1 || p.Stderr.String() != want {
		t.Fatalf("without CAP_SETUID: exit %d, stderr %q; want 1 and %q", code, p.Stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "twistd.pid")); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "twistd.log"))
	if !strings.Contains(string(log), "stopped listening on") {
		t.Errorf("the bound listener was not closed on the failure:\n%s", log)
	}
}

// Bind, then chroot into a prepared directory, then drop: the poem is read
// inside the jail, the log reopens inside it and the pidfile is removed.
func TestChroot(t *testing.T) {
	requireRoot(t)
	jail := nobodyDir(t)
	writePoem(t, jail)
	pidfile := filepath.Join(jail, "twistd.pid")
	logPath := filepath.Join(jail, "twistd.log")
	pid := startDaemon(t, t.TempDir(), pidfile, "--rundir", jail, "--chroot", jail, "--uid", "nobody", "--gid", "nogroup",
		"fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "/poem.txt")
	if root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); root != jail {
		t.Errorf("daemon root %q, want %q", root, jail)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != jail {
		t.Errorf("daemon cwd %q, want the jail's root %q", cwd, jail)
	}
	addr := listenAddr(t, logPath)
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("served %q", got)
	}
	os.Rename(logPath, filepath.Join(jail, "old.txt"))
	syscall.Kill(pid, syscall.SIGUSR1)
	waitFile(t, logPath, "reopened log file /twistd.log", 10*time.Second)
	stopDaemon(t, pid, pidfile)
	waitFile(t, logPath, "] shut down\n", 5*time.Second)
}

func TestChrootPathsMustBeInside(t *testing.T) {
	dir := t.TempDir()
	jail := t.TempDir()
	code, _, stderr := testutil.Run(t, dir, 10*time.Second, "--chroot", jail, "fastpoetry", "--poem", "/poem.txt")
	want := "twistd: --pidfile " + filepath.Join(dir, "twistd.pid") + " is outside --chroot " + jail
	if code != 2 || !strings.HasPrefix(stderr, want) {
		t.Fatalf("exit %d, stderr %q; want 2 and %q...", code, stderr, want)
	}
}
