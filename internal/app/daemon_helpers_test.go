package app_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/testutil"
)

const testPoem = "Whose woods these are I think I know.\nHis house is in the village though;\n"

// writePoem puts the test poem at dir/poem.txt, readable by everyone.
func writePoem(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "poem.txt")
	if err := os.WriteFile(p, []byte(testPoem), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startDaemon runs the starting command to completion, expects exit 0, and
// returns the daemon's pid from the pidfile. The daemon is killed at
// cleanup if the test leaves it running.
func startDaemon(t *testing.T, dir, pidfile string, args ...string) int {
	t.Helper()
	return startDaemonCmd(t, exec.Command(testutil.Binary(t), args...), dir, pidfile)
}

// startDaemonCmd is startDaemon for a starting command run some other way
// (in a namespace, with extra descriptors).
func startDaemonCmd(t *testing.T, cmd *exec.Cmd, dir, pidfile string) int {
	t.Helper()
	start := time.Now()
	p := testutil.StartCmd(t, cmd, dir)
	code := p.Wait(t, 20*time.Second)
	stdout, stderr := p.Stdout.String(), p.Stderr.String()
	if code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), code, stdout, stderr)
	}
	if stdout != "" || stderr != "" {
		t.Errorf("starting command printed: stdout %q stderr %q", stdout, stderr)
	}
	pid, err := daemon.ReadPidfile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, pid)
	t.Logf("daemon pid %d ready %v after start", pid, time.Since(start).Round(time.Millisecond))
	return pid
}

// killAtCleanup kills pid at cleanup if it still runs. A daemon leads
// its own process group (it called setsid), so its group goes too: a
// replacement it started for a reload, which a failing test may never
// have learnt the pid of, dies with it.
func killAtCleanup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Logf("killed daemon %d at cleanup", pid)
		}
	})
}

// killPidfileOwnerAtCleanup kills, at cleanup, whatever process the
// pidfile names then: after reloads of a --nodaemon run (whose
// replacements share the test's process group) that is the last one,
// even when the test failed before it read its pid.
func killPidfileOwnerAtCleanup(t *testing.T, pidfile string) {
	t.Cleanup(func() {
		if pid, err := daemon.ReadPidfile(pidfile); err == nil && pid != os.Getpid() && alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Logf("killed pid %d named by %s at cleanup", pid, pidfile)
		}
	})
}

// alive reports whether pid runs (a zombie awaiting its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// statField returns the n-th field (1-based, as in proc(5)) of /proc/pid/stat.
func statField(t *testing.T, pid, n int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, _ := strconv.Atoi(fields[n-3])
	return v
}

// stopDaemon sends SIGTERM and expects a clean exit that removes the pidfile.
func stopDaemon(t *testing.T, pid int, pidfile string) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, pid, 10*time.Second)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile left after SIGTERM: %v", err)
	}
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFile waits until the file contains s and returns its content.
func waitFile(t *testing.T, path, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), s) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %v; it holds:\n%s", path, s, timeout, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetch reads everything the server at addr sends before closing.
func fetch(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (privilege drop / chroot); CI runs as root")
	}
}

// nobodyDir makes a directory the nobody user can traverse and write, for
// daemons that drop to nobody and must still manage their pidfile and log.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(d) == os.TempDir() {
			break
		}
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// procIDs returns the Uid or Gid line of /proc/pid/status: real,
// effective, saved, filesystem.
func procIDs(t *testing.T, pid int, key string) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("no %s line in /proc/%d/status", key, pid)
	return nil
}

// passedSocket binds a loopback TCP socket as systemd would for a unit
// and returns it as a file to pass to twistd (closed at cleanup), with its
// address. Only the file holds the socket open.
func passedSocket(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// socketActivated is the command that runs twistd with f as its one
// systemd socket (fd 3): a shell sets LISTEN_PID to its own pid and execs
// twistd, as systemd does between fork and exec.
func socketActivated(t *testing.T, f *os.File, args ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, testutil.Binary(t)}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	return cmd
}
