package app_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// dropArgs returns --uid/--gid nobody when running as root, so the log
// tests also prove that a dropped daemon can rotate and reopen its log,
// and a run directory the daemon may write either way.
func dropArgs(t *testing.T) (string, []string) {
	if os.Geteuid() != 0 {
		t.Log("not root: log rotation tested without a privilege drop")
		return t.TempDir(), nil
	}
	return nobodyDir(t), []string{"--uid", "nobody", "--gid", "nogroup"}
}

var closedLine = regexp.MustCompile(`\[fastpoetry,(\d+),127\.0\.0\.1:\d+\] connection closed`)

// logLines maps each connection number logged as closed to the files it
// was found in, over the log and its rotated copies.
func logLines(t *testing.T, dir string) (map[int][]string, []string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "twistd*.log"))
	seen := map[int][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range closedLine.FindAllStringSubmatch(string(b), -1) {
			n, _ := strconv.Atoi(m[1])
			seen[n] = append(seen[n], filepath.Base(f))
		}
	}
	return seen, files
}

// burst opens n connections (16 at a time) and reads each poem.
func burst(t *testing.T, addr string, n int) {
	t.Helper()
	var next, failed atomic.Int64
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 || time.Now().After(deadline) {
		t.Fatalf("burst: %d connections failed, deadline passed: %v", failed.Load(), time.Now().After(deadline))
	}
}

func waitLogged(t *testing.T, dir string, n int) map[int][]string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen, _ := logLines(t, dir)
		if len(seen) >= n || time.Now().After(deadline) {
			return seen
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A burst writes across several 1 MiB rotations; every connection's line
// is in exactly one file and no file exceeds the limit.
func TestLogRotationLosesNothing(t *testing.T) {
	dir, drop := dropArgs(t)
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	args := append(drop, "--logfile-max-size", "1", "--logfile-max-files", "0",
		"fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	pid := startDaemon(t, dir, pidfile, args...)
	addr := listenAddr(t, filepath.Join(dir, "twistd.log"))

	// ~90 bytes a line: 30000 connections make about 2.6 MiB of log.
	const n = 30000
	start := time.Now()
	burst(t, addr, n)
	seen := waitLogged(t, dir, n)
	t.Logf("%d connections in %v", n, time.Since(start).Round(time.Millisecond))
	_, files := logLines(t, dir)
	if len(files) < 3 {
		t.Errorf("only %d log files, want at least 3 (two rotations)", len(files))
	}
	for i := 1; i <= n; i++ {
		if len(seen[i]) != 1 {
			t.Errorf("connection %d logged in %v, want exactly one file", i, seen[i])
			if t.Failed() && i > 20 {
				break
			}
		}
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over the 1 MiB limit", f, fi.Size())
		}
		if fi.Mode().Perm()&0o137 != 0 {
			t.Errorf("%s mode %v is wider than 0640", f, fi.Mode().Perm())
		}
		if drop != nil && fi.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Errorf("%s owned by uid %d, want nobody", f, fi.Sys().(*syscall.Stat_t).Uid)
		}
	}
	stopDaemon(t, pid, pidfile)
}

// logrotate's move-then-signal: after mv and SIGUSR1 (or SIGHUP, which a
// daemon takes the same way) later lines land in a new file at the old
// name, none in the moved one, none lost.
func TestSignalReopensMovedLog(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) { testReopen(t, sig) })
	}
}

func testReopen(t *testing.T, sig syscall.Signal) {
	dir, drop := dropArgs(t)
	writePoem(t, dir)
	pidfile := filepath.Join(dir, "twistd.pid")
	logPath := filepath.Join(dir, "twistd.log")
	pid := startDaemon(t, dir, pidfile, append(drop, "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")...)
	addr := listenAddr(t, logPath)

	burst(t, addr, 50)
	waitLogged(t, dir, 50)
	moved := filepath.Join(dir, "moved.txt") // outside the twistd*.log glob
	if err := os.Rename(logPath, moved); err != nil {
		t.Fatal(err)
	}
	burst(t, addr, 50) // still written to the moved file: nothing reopened it yet
	// A connection is logged when it has closed on both sides, so lines
	// may trail the burst and come out of order: wait for all 50.
	for i := 51; i <= 100; i++ {
		waitFile(t, moved, fmt.Sprintf("[fastpoetry,%d,", i), 10*time.Second)
	}
	syscall.Kill(pid, sig)
	waitFile(t, logPath, "reopened log file", 10*time.Second)
	burst(t, addr, 50)

	seen := waitLogged(t, dir, 50)
	for i := 101; i <= 150; i++ {
		if len(seen[i]) != 1 || seen[i][0] != "twistd.log" {
			t.Errorf("connection %d logged in %v, want the new twistd.log", i, seen[i])
		}
	}
	old, _ := os.ReadFile(moved)
	for i := 1; i <= 150; i++ {
		in := strings.Contains(string(old), fmt.Sprintf("[fastpoetry,%d,", i))
		if in != (i <= 100) {
			t.Errorf("connection %d in the moved file: %v", i, in)
		}
	}
	if fi, err := os.Stat(logPath); err == nil && drop != nil && fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("reopened log owned by uid %d, want nobody", fi.Sys().(*syscall.Stat_t).Uid)
	}
	// The daemon's stderr follows the log to the new file.
	if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); got != logPath {
		t.Errorf("daemon stderr -> %q after reopen, want %q", got, logPath)
	}
	stopDaemon(t, pid, pidfile)
}

// listenAddr waits for the "listening on ADDR" line in the log.
func listenAddr(t *testing.T, logPath string) string {
	t.Helper()
	log := waitFile(t, logPath, "listening on ", 10*time.Second)
	rest := log[strings.Index(log, "listening on ")+len("listening on "):]
	return rest[:strings.IndexAny(rest, " \n")]
}

// Endpoints appear in the log as the user wrote them: --iface ::1 is
// interface=::1, not the escaped endpoint-string form interface=\:\:1,
// and that form is accepted back by --port.
func TestLogShowsEndpointAsWritten(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	for _, args := range [][]string{
		{"--port", "0", "--iface", "::1"},
		{"--port", `tcp:0:interface=\:\:1`},
		{"--port", "tcp:0:interface=::1"}, // as the log shows it, and fastpoetry's help
	} {
		p := testutil.Start(t, dir, append([]string{"-n", "--pidfile=", "fastpoetry", "--poem", "poem.txt"}, args...)...)
		p.WaitFor(t, "] started\n", 10*time.Second)
		p.Signal(t, syscall.SIGTERM)
		p.Wait(t, 10*time.Second)
		if out := p.Stdout.String(); !strings.Contains(out, "started listener (tcp:0:interface=::1)\n") || strings.Contains(out, `\:`) {
			t.Errorf("%q: want the listener logged as tcp:0:interface=::1, got:\n%s", args, out)
		}
	}
}
