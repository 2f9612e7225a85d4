package app_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// The daemon detaches and the shell gets its prompt back only once the
// daemon serves; SIGTERM stops it cleanly and removes the pidfile.
func TestDaemonStartsServesAndStops(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	port := testutil.FreePort(t)
	pidfile := filepath.Join(dir, "twistd.pid")
	pid := startDaemon(t, dir, pidfile, "fastpoetry", "--port", strconv.Itoa(port), "--iface", "127.0.0.1", "--poem", "poem.txt")

	if b, _ := os.ReadFile(pidfile); string(b) != fmt.Sprintf("%d\n", pid) {
		t.Errorf("pidfile holds %q", b)
	}
	if !alive(pid) {
		t.Fatalf("daemon %d not running", pid)
	}
	// A session of its own (setsid), not ours.
	if sid, mine := statField(t, pid, 6), syscall.Getpgrp(); sid != pid || sid == mine {
		t.Errorf("daemon session %d, want its own (%d), ours is %d", sid, pid, mine)
	}
	// Nothing points at the starting command's pipes any more.
	for fd, want := range map[int]string{0: "/dev/null", 1: filepath.Join(dir, "twistd.log"), 2: filepath.Join(dir, "twistd.log")} {
		if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); got != want {
			t.Errorf("daemon fd %d -> %q, want %q", fd, got, want)
		}
	}
	// go-daemon leaves /dev/null open on fd 3. The number itself is reused
	// at once (lumberjack's cleanup briefly opens the log directory), so
	// look for the spare /dev/null on any fd past stderr.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		if fd, _ := strconv.Atoi(e.Name()); fd > 2 {
			if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); got == os.DevNull {
				t.Errorf("daemon still holds go-daemon's spare /dev/null on fd %d", fd)
			}
		}
	}
	if got := fetch(t, fmt.Sprintf("127.0.0.1:%d", port)); got != testPoem {
		t.Fatalf("served %q", got)
	}
	logPath := filepath.Join(dir, "twistd.log")
	waitFile(t, logPath, "connection closed", 5*time.Second)
	// Default daemon umask 0077: files it creates are private.
	for _, f := range []string{logPath, pidfile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600 (umask 0077)", f, fi.Mode().Perm())
		}
	}

	stopDaemon(t, pid, pidfile)
	log := waitFile(t, logPath, "] shut down\n", 5*time.Second)
	for _, s := range []string{"received SIGTERM, shutting down", "stopped listening on", "started\n"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
}

func TestDaemonUmaskOption(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	pid := startDaemon(t, dir, pidfile, "--umask", "022", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	for f, want := range map[string]os.FileMode{pidfile: 0o644, filepath.Join(dir, "twistd.log"): 0o640} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", f, fi.Mode().Perm(), err, want)
		}
	}
	stopDaemon(t, pid, pidfile)
}

// A daemon that fails to start is reported by the starting command with
// the daemon's own one-line error and a non-zero exit; nothing is left.
func TestDaemonStartFailureReported(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"fastpoetry", "--port", busyPort, "--iface", "127.0.0.1", "--poem", "poem.txt"},
			"twistd: cannot listen on 127.0.0.1:" + busyPort + ": address already in use\n"},
		{"poem missing", []string{"fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "nope.txt"},
			"twistd: poem nope.txt: no such file or directory\n"},
		{"log dir missing", []string{"--logfile", "no/such/dir/x.log", "fastpoetry", "--port", "0", "--poem", "poem.txt"},
			"/no/such/dir/x.log: no such file or directory\n"},
		{"unknown user", []string{"--uid", "no-such-user-xyz", "fastpoetry", "--poem", "poem.txt"},
			"twistd: unknown user \"no-such-user-xyz\"\n"},
		{"unknown group", []string{"--gid", "no-such-group-xyz", "fastpoetry", "--poem", "poem.txt"},
			"twistd: unknown group \"no-such-group-xyz\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePoem(t, dir)
			code, stdout, stderr := testutil.Run(t, dir, 20*time.Second, tc.args...)
			if code != 1 || !strings.HasSuffix(stderr, tc.want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one line ending %q", code, stdout, stderr, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "twistd.pid")); !os.IsNotExist(err) {
				t.Errorf("pidfile left behind: %v", err)
			}
		})
	}
}

// hangingStart returns a command line whose daemon hangs in its privileged
// start, after it wrote its pidfile: ftp-lite reading a password file that
// is a FIFO nobody writes (a poem that is one is refused, not read).
func hangingStart(t *testing.T, dir string) []string {
	t.Helper()
	if err := syscall.Mkfifo(filepath.Join(dir, "passwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"ftp-lite", "--port", "tcp:0:interface=127.0.0.1", "--root", dir, "--password-file", "passwd"}
}

func waitPid(t *testing.T, pidfile string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			killAtCleanup(t, pid)
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", pidfile)
	return 0
}

// The starting command notices a daemon that dies before reporting
// (Twisted's twistd waits forever there).
func TestDaemonDiesBeforeReady(t *testing.T) {
	dir := t.TempDir()
	p := testutil.Start(t, dir, hangingStart(t, dir)...)
	pid := waitPid(t, filepath.Join(dir, "twistd.pid"))
	waitFile(t, filepath.Join(dir, "twistd.log"), "application ftp-lite, pid", 10*time.Second)
	syscall.Kill(pid, syscall.SIGKILL)
	code := p.Wait(t, 20*time.Second)
	want := fmt.Sprintf("twistd: daemon (pid %d) exited (signal: killed) before it was ready\n", pid)
	if code != 1 || p.Stderr.String() != want {
		t.Fatalf("exit %d, stderr %q; want 1 and %q", code, p.Stderr, want)
	}
}

// The wait for the verdict is bounded and says when it gives up.
func TestDaemonStartTimeout(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"--start-timeout", "1s"}, hangingStart(t, dir)...)
	start := time.Now()
	code, _, stderr := testutil.Run(t, dir, 20*time.Second, args...)
	pid := waitPid(t, filepath.Join(dir, "twistd.pid"))
	want := fmt.Sprintf("twistd: daemon (pid %d) not ready after 1s; stopped waiting", pid)
	if code != 1 || !strings.HasPrefix(stderr, want) {
		t.Fatalf("exit %d, stderr %q; want 1 and %q...", code, stderr, want)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("gave up after %v", el)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

func TestPidfileLiveRefusedStaleReplaced(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	args := []string{"fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt"}
	pid := startDaemon(t, dir, pidfile, args...)

	for _, mode := range [][]string{nil, {"-n"}} {
		code, _, stderr := testutil.Run(t, dir, 20*time.Second, append(mode, args...)...)
		want := fmt.Sprintf("twistd: another twistd is running as pid %d (pidfile %s)\n", pid, pidfile)
		if code != 1 || stderr != want {
			t.Fatalf("second start %v: exit %d, stderr %q; want 1 and %q", mode, code, stderr, want)
		}
	}
	if b, _ := os.ReadFile(pidfile); string(b) != fmt.Sprintf("%d\n", pid) {
		t.Fatalf("refused start changed the pidfile: %q", b)
	}
	stopDaemon(t, pid, pidfile)

	for _, old := range []string{"999999999\n"} {
		os.WriteFile(pidfile, []byte(old), 0o644)
		pid := startDaemon(t, dir, pidfile, args...)
		log := waitFile(t, filepath.Join(dir, "twistd.log"), fmt.Sprintf("application fastpoetry, pid %d", pid), 5*time.Second)
		if !strings.Contains(log, "WARNING: replaced pidfile "+pidfile) {
			t.Errorf("no warning about the replaced pidfile %q", old)
		}
		stopDaemon(t, pid, pidfile)
	}
}

// --nodaemon writes and removes the pidfile too.
func TestNodaemonPidfile(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	p := testutil.Start(t, dir, "-n", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	p.WaitFor(t, "] started\n", 10*time.Second)
	pidfile := filepath.Join(dir, "twistd.pid")
	if b, _ := os.ReadFile(pidfile); string(b) != fmt.Sprintf("%d\n", p.Cmd.Process.Pid) {
		t.Fatalf("pidfile holds %q", b)
	}
	p.Signal(t, syscall.SIGINT)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatalf("pidfile left: %v", err)
	}
}

// Twenty starts at the same moment with one pidfile: exactly one daemon.
func TestSimultaneousStartsOneDaemon(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	bin := testutil.Binary(t)
	const n = 20
	type result struct {
		code   int
		stderr string
	}
	results := make([]result, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		cmd := exec.Command(bin, "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
		cmd.Dir = dir
		wg.Go(func() {
			<-gate
			out, err := cmd.CombinedOutput()
			results[i].stderr = string(out)
			if ee, ok := err.(*exec.ExitError); ok {
				results[i].code = ee.ExitCode()
			} else if err != nil {
				results[i].code = -1
				results[i].stderr = err.Error()
			}
		})
	}
	close(gate)
	wg.Wait()
	pid := waitPid(t, pidfile)
	ok := 0
	for _, r := range results {
		switch {
		case r.code == 0:
			ok++
		case r.code != 1 || !strings.HasPrefix(r.stderr, "twistd: another twistd is "):
			t.Errorf("loser: exit %d, %q", r.code, r.stderr)
		}
	}
	if ok != 1 {
		t.Fatalf("%d starts succeeded, want 1", ok)
	}
	// Count the daemons: every twistd process started in dir.
	var running []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !alive(p) {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", p))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		if cwd == dir && exe == bin {
			running = append(running, p)
		}
	}
	if len(running) != 1 || running[0] != pid {
		t.Fatalf("twistd processes in %s: %v; want only %d", dir, running, pid)
	}
	stopDaemon(t, pid, pidfile)
}

// A descriptor the caller left open by accident (not close-on-exec) does
// not follow the starting command into the daemon: a caller reading a pipe
// it passed down sees EOF once the starting command has exited, not when
// the daemon stops (daemon(7): close everything past stderr).
func TestDaemonDropsInheritedDescriptors(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(testutil.Binary(t), "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	// Fd 7 in the starting command, inheritable. (Fd 3 would prove
	// nothing: the re-exec puts /dev/null there.)
	cmd.ExtraFiles = []*os.File{nil, nil, nil, nil, w}
	defer w.Close()
	pid := startDaemonCmd(t, cmd, dir, pidfile)
	w.Close() // the test's own write end: now only the daemon could hold one
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("caller's pipe: read %d bytes, %v; want EOF (the daemon still holds its write end)", n, err)
	}
	stopDaemon(t, pid, pidfile)
}
