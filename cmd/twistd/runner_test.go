package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/app"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/testutil"
)

const timeout = 20 * time.Second

// writePoem writes a poem of n bytes (a repeating, position-checkable
// pattern) and returns its path and content.
func writePoem(t *testing.T, n int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %07d: whose woods these are I think I know\n", i)
	}
	poem := b.Bytes()[:n]
	path := filepath.Join(t.TempDir(), "poem.txt")
	if err := os.WriteFile(path, poem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, poem
}

// startPoetry runs `twistd -n fastpoetry` on a free port and returns the
// process and its address.
func startPoetry(t *testing.T, poemPath string, runnerArgs ...string) (*testutil.Proc, string) {
	t.Helper()
	port := testutil.FreePort(t)
	args := append(append([]string{"-n"}, runnerArgs...), "fastpoetry", "--port", fmt.Sprint(port), "--iface", "127.0.0.1", "--poem", poemPath)
	p := testutil.Start(t, "", args...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if slices.Contains(runnerArgs, "--logfile") {
		waitListening(t, p, addr)
	} else {
		p.WaitFor(t, "] started\n", timeout)
	}
	return p, addr
}

// waitListening waits until addr accepts a connection (the log is not on
// stdout to watch). The probe connection is served like any other.
func waitListening(t *testing.T, p *testutil.Proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never accepted\nstderr:\n%s", addr, p.Stderr)
}

// dial connects to addr; the connection closes when the test ends and every
// I/O on it fails after the test's timeout rather than hanging.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	return c.(*net.TCPConn)
}

// fetch reads everything the server sends until it closes.
func fetch(t *testing.T, addr string) []byte {
	t.Helper()
	b, err := io.ReadAll(dial(t, addr))
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(b))
	}
	return b
}

func stopClean(t *testing.T, p *testutil.Proc) string {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, timeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\nstdout:\n%s\nstderr:\n%s", code, p.Stdout, p.Stderr)
	}
	return p.Stdout.String()
}

func TestServesPoemAndShutsDown(t *testing.T) {
	path, poem := writePoem(t, 3000)
	p, addr := startPoetry(t, path)
	if got := fetch(t, addr); !bytes.Equal(got, poem) {
		t.Fatalf("got %d bytes, want %d", len(got), len(poem))
	}
	p.WaitFor(t, "connection closed sent=3000 received=0", timeout)
	out := stopClean(t, p)
	for _, want := range []string{
		"starting up", "application fastpoetry", "[fastpoetry] listening on " + addr,
		"loaded poem " + path, "[fastpoetry] started listener", "[-] started",
		"[fastpoetry,1,127.0.0.1:", "received SIGTERM, shutting down",
		"[fastpoetry] stopped listening on " + addr, "[fastpoetry] stopped listener", "[-] shut down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q\n%s", want, out)
		}
	}
	// Every line: timestamp (RFC 3339 with milliseconds), [system], message.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 3 || !strings.HasPrefix(f[1], "[") {
			t.Errorf("malformed log line %q", line)
			continue
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", f[0]); err != nil {
			t.Errorf("log line %q: timestamp: %v", line, err)
		}
	}
}

// In the foreground SIGINT and SIGHUP (the terminal closed) stop the
// server as SIGTERM does: drained, logged, exit 0.
func TestOtherStopSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			path, poem := writePoem(t, 100)
			p, addr := startPoetry(t, path)
			if got := fetch(t, addr); !bytes.Equal(got, poem) {
				t.Fatalf("got %d bytes, want %d", len(got), len(poem))
			}
			p.Signal(t, sig)
			if code := p.Wait(t, timeout); code != 0 {
				t.Fatalf("exit %d after %v\n%s", code, sig, p.Stderr)
			}
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP"}[sig]
			for _, want := range []string{"received " + name + ", shutting down", "[-] shut down"} {
				if !strings.Contains(p.Stdout.String(), want) {
					t.Errorf("log lacks %q\n%s", want, p.Stdout)
				}
			}
		})
	}
}

func TestWithNetcat(t *testing.T) {
	nc, err := exec.LookPath("nc")
	if err != nil {
		t.Skip("nc not installed (Debian: netcat-openbsd); CI installs it")
	}
	path, poem := writePoem(t, 5000)
	p, addr := startPoetry(t, path)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(nc, host, port)
	cmd.Stdin = strings.NewReader("")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Start()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatal("nc did not finish")
	}
	if !bytes.Equal(out.Bytes(), poem) {
		t.Fatalf("nc got %d bytes, want %d", out.Len(), len(poem))
	}
	stopClean(t, p)
}

func TestBigPoemSlowReader(t *testing.T) {
	path, poem := writePoem(t, 2<<20)
	p, addr := startPoetry(t, path)
	c := dial(t, addr)
	var got []byte
	buf := make([]byte, 16<<10)
	reads := 0
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		// Slow at first, long enough to fill every buffer on the way and
		// keep the server blocked in its write.
		if reads++; reads < 40 {
			time.Sleep(25 * time.Millisecond)
		}
	}
	if !bytes.Equal(got, poem) {
		t.Fatalf("got %d bytes, want %d", len(got), len(poem))
	}
	stopClean(t, p)
}

func TestManyConcurrentClients(t *testing.T) {
	path, poem := writePoem(t, 20000)
	p, addr := startPoetry(t, path)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(timeout))
			b, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(b, poem) {
				err = fmt.Errorf("got %d bytes, want %d", len(b), len(poem))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out := stopClean(t, p)
	if got := strings.Count(out, "connection closed sent=20000"); got != n {
		t.Errorf("%d connections logged as fully served, want %d", got, n)
	}
}

// A client in the middle of a big poem when SIGTERM arrives still gets all
// of it, and the server exits 0 once it has.
func TestInFlightClientSurvivesSIGTERM(t *testing.T) {
	// Bigger than every socket buffer on the way, so the server is still
	// writing when the signal arrives.
	path, poem := writePoem(t, 32<<20)
	p, addr := startPoetry(t, path)
	c := dial(t, addr)
	head := make([]byte, 1024)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGTERM)
	p.WaitFor(t, "stopped listening", timeout)
	// New clients are refused once the listener is closed.
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Error("listener still accepting after SIGTERM")
	}
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, poem) {
		t.Fatalf("in-flight client got %d bytes, want %d", len(got), len(poem))
	}
	if code := p.Wait(t, timeout); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stdout)
	}
}

// Clients whose connection the kernel accepted while the server was not
// running (SIGSTOP) are still in the listen queue when SIGTERM arrives;
// each gets the whole poem rather than a reset.
func TestQueuedClientsServedAtSIGTERM(t *testing.T) {
	path, poem := writePoem(t, 5000)
	p, addr := startPoetry(t, path)
	p.Signal(t, syscall.SIGSTOP)
	const n = 20
	clients := make([]*net.TCPConn, n)
	for i := range clients {
		clients[i] = dial(t, addr) // completes in the kernel: the server is stopped
	}
	p.Signal(t, syscall.SIGTERM)
	p.Signal(t, syscall.SIGCONT)
	for i, c := range clients {
		if got, err := io.ReadAll(c); !bytes.Equal(got, poem) {
			t.Errorf("client %d: %d of %d bytes, %v", i, len(got), len(poem), err)
		}
	}
	if code := p.Wait(t, timeout); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stdout)
	}
	if got := strings.Count(p.Stdout.String(), "connection closed sent=5000"); got != n {
		t.Errorf("%d connections logged as fully served, want %d\n%s", got, n, p.Stdout)
	}
}

// Clients waiting for a slot under --max-connections when SIGTERM comes are
// served as the connection in flight finishes, not closed.
func TestWaitingClientsServedAtSIGTERM(t *testing.T) {
	path, poem := writePoem(t, 32<<20)
	p, addr := startPoetry(t, path, "--max-connections", "1")
	holder := dial(t, addr)
	// Served (it holds the one slot), and its 32 MiB cannot all be written
	// into the socket buffers until it reads. (A tiny receive buffer would
	// also do, but makes loopback TCP crawl once it is read.)
	if _, err := io.ReadFull(holder, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	const n = 5
	waiting := make([]*net.TCPConn, n)
	for i := range waiting {
		waiting[i] = dial(t, addr)
	}
	p.WaitFor(t, "connection limit of 1 reached: new clients wait", timeout)
	p.Signal(t, syscall.SIGTERM)
	p.WaitFor(t, "waiting for a slot will be served as connections finish", timeout)
	if got, err := io.ReadAll(holder); len(got)+1024 != len(poem) {
		t.Fatalf("client in flight: %d of %d bytes, %v", len(got)+1024, len(poem), err)
	}
	for i, c := range waiting {
		if got, err := io.ReadAll(c); !bytes.Equal(got, poem) {
			t.Errorf("waiting client %d: %d of %d bytes, %v", i, len(got), len(poem), err)
		}
	}
	if code := p.Wait(t, timeout); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stdout)
	}
	if out := p.Stdout.String(); strings.Count(out, fmt.Sprintf("connection closed sent=%d", len(poem))) != n+1 || strings.Contains(out, "never served") {
		t.Errorf("want %d connections logged as fully served and none unserved:\n%s", n+1, out)
	}
}

// With a short grace period a client that does not read is cut off, the
// cut is logged, and a second SIGTERM is not needed.
func TestGracePeriodEnds(t *testing.T) {
	path, _ := writePoem(t, 8<<20)
	p, addr := startPoetry(t, path, "--grace", "300ms")
	c := dial(t, addr)
	c.SetReadBuffer(4096)
	// Being served, not still in the accept queue; then stop reading.
	if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, timeout); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := p.Stdout.String(); !strings.Contains(out, "grace period over: aborted 1 connection(s)") {
		t.Fatalf("no grace message:\n%s", out)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	path, _ := writePoem(t, 8<<20)
	p, addr := startPoetry(t, path, "--grace", "1m")
	c := dial(t, addr)
	c.SetReadBuffer(4096)
	// Being served, not still in the accept queue (where the first signal
	// would just close it and the server would exit at once).
	if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGINT)
	p.WaitFor(t, "received SIGINT, shutting down", timeout)
	p.Signal(t, syscall.SIGINT)
	if code := p.Wait(t, 5*time.Second); code != 1 {
		t.Fatalf("exit %d after a second SIGINT, want 1", code)
	}
	if !strings.Contains(p.Stderr.String(), "twistd: shutdown forced by a second SIGINT") {
		t.Fatalf("stderr: %q", p.Stderr)
	}
}

func TestLogfile(t *testing.T) {
	path, _ := writePoem(t, 100)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "poetry.log")
	p, addr := startPoetry(t, path, "--logfile", logPath)
	fetch(t, addr)
	stopClean(t, p)
	if p.Stdout.String() != "" {
		t.Errorf("stdout not empty with --logfile: %q", p.Stdout)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"starting up", "connection closed sent=100", "shut down"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log file lacks %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	poem, _ := writePoem(t, 10)
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-n", "nosuch"}, `twistd: unknown plugin "nosuch" (see twistd --help)`},
		{[]string{"--bogus", "fastpoetry"}, "twistd: unknown flag: --bogus (see twistd --help)"},
		{[]string{"-n", "fastpoetry", "--bogus", "--poem", poem}, "twistd: fastpoetry: unknown flag: --bogus (see twistd fastpoetry --help)"},
		{[]string{"-n", "fastpoetry"}, "twistd: fastpoetry: missing required option --poem (see twistd fastpoetry --help)"},
		{[]string{"-n", "fastpoetry", "--poem"}, "twistd: fastpoetry: flag needs an argument: --poem (see twistd fastpoetry --help)"},
		{[]string{"-n", "fastpoetry", "--poem", poem, "--port", "x1"}, `twistd: fastpoetry: invalid value for --port: endpoint "x1": unknown endpoint type "x1" (want tcp, unix or systemd) (see twistd fastpoetry --help)`},
		{[]string{"-n", "fastpoetry", "--poem", poem, "--port", "70000"}, `twistd: fastpoetry: invalid value "70000" for --port: not a port number`},
		{[]string{"-n", "fastpoetry", "--poem", poem, "extra"}, `twistd: fastpoetry: unexpected argument "extra" (see twistd fastpoetry --help)`},
		{[]string{"--grace", "soon", "-n", "fastpoetry", "--poem", poem}, `twistd: invalid value "soon" for --grace`},
		{[]string{"fastpoetry", "-n", "--poem", poem}, `twistd: fastpoetry: -n is a runner option: put it before "fastpoetry" (see twistd --help)`},
		{[]string{"fastpoetry", "--poem", poem, "--logfile", "x.log"}, `twistd: fastpoetry: --logfile is a runner option: put it before "fastpoetry" (see twistd --help)`},
		{[]string{"-n", "fastpoerty", "--poem", poem}, `twistd: unknown plugin "fastpoerty"; did you mean fastpoetry? (see twistd --help)`},
		// A negative value as a separate argument is that flag's value,
		// not a flag of its own that swallows the plugin name.
		{[]string{"-n", "--uid", "-5", "echo", "--port", "0", "--iface", "127.0.0.1"}, `twistd: invalid value "-5" for --uid: must not be negative (see twistd --help)`},
		{[]string{"-n", "-u", "-5", "echo", "--port", "0"}, `twistd: invalid value "-5" for --uid: must not be negative`},
		{[]string{"-n", "--max-connections", "-5", "echo", "--port", "0", "--iface", "127.0.0.1"}, `twistd: invalid value "-5" for --max-connections: must not be negative`},
		{[]string{"-n", "--logfile-max-size", "8796093022208", "echo", "--port", "0"}, `twistd: invalid value 8796093022208 for --logfile-max-size: must be 0 (no rotation) to 1048576 (MiB)`},
	}
	for _, tc := range cases {
		code, stdout, stderr := testutil.Run(t, "", timeout, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr, tc.msg)
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
			t.Errorf("%v: stderr has %d lines, want one: %q", tc.args, n+1, stderr)
		}
		if strings.Contains(stderr+stdout, "goroutine ") || strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: stack trace or usage dump: %q", tc.args, stderr)
		}
	}
}

func TestStartupFailures(t *testing.T) {
	poem, _ := writePoem(t, 10)
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"missing poem", []string{"--poem", filepath.Join(dir, "none.txt")}, "twistd: poem " + filepath.Join(dir, "none.txt") + ": no such file or directory"},
		{"poem is a directory", []string{"--poem", dir}, "twistd: poem " + dir + ": not a regular file (a directory)"},
		{"port in use", []string{"--poem", poem, "--port", busyPort, "--iface", "127.0.0.1"}, "twistd: cannot listen on 127.0.0.1:" + busyPort + ": address already in use"},
		{"bad logfile", nil, "twistd: log file /nonexistent/dir/x.log: no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", "fastpoetry", "--port", fmt.Sprint(testutil.FreePort(t)), "--iface", "127.0.0.1"}, tc.args...)
			if tc.args == nil {
				args = []string{"-n", "--logfile", "/nonexistent/dir/x.log", "fastpoetry", "--poem", poem}
			}
			code, stdout, stderr := testutil.Run(t, "", timeout, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if strings.TrimSpace(stderr) != tc.msg {
				t.Errorf("stderr %q, want %q", stderr, tc.msg)
			}
			if strings.Contains(stdout+stderr, "goroutine ") || strings.Contains(stdout+stderr, "Usage:") {
				t.Errorf("stack trace or usage dump:\n%s\n%s", stdout, stderr)
			}
		})
	}
}

// Permission denied, on bind and on the poem: the binary runs as nobody,
// on a port below 1024, or with a poem only root may read.
func TestPermissionDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process as nobody")
	}
	// t.TempDir's parent is private to root; nobody needs directories it
	// can enter.
	dir, err := os.MkdirTemp("", "twistd-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	readable := filepath.Join(dir, "poem.txt")
	secret := filepath.Join(dir, "secret.txt")
	for path, mode := range map[string]os.FileMode{readable: 0o644, secret: 0o600} {
		if err := os.WriteFile(path, []byte("a poem\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bind", []string{"--port", "tcp:81:interface=127.0.0.1", "--poem", readable}, "twistd: cannot listen on 127.0.0.1:81: permission denied"},
		{"poem", []string{"--port", fmt.Sprint(testutil.FreePort(t)), "--iface", "127.0.0.1", "--poem", secret}, "twistd: poem " + secret + ": permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", "--pidfile=", "fastpoetry"}, tc.args...)
			cmd := exec.Command(testutil.Binary(t), args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			p := testutil.StartCmd(t, cmd, dir)
			if code := p.Wait(t, timeout); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if got := strings.TrimSpace(p.Stderr.String()); got != tc.want {
				t.Fatalf("stderr %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, _ := testutil.Run(t, "", timeout, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Usage:", "twistd [options] PLUGIN [plugin options]", "--nodaemon", "--logfile", "--pidfile", "Plugins:", "fastpoetry", "a fast poetry service"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	code, _, stderr := testutil.Run(t, "", timeout)
	if code != 2 || !strings.Contains(stderr, "Plugins:") || !strings.Contains(stderr, "twistd: no plugin given") {
		t.Errorf("no args: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ = testutil.Run(t, "", timeout, "fastpoetry", "--help")
	for _, want := range []string{"twistd [options] fastpoetry [plugin options]", "--port", `(default "10000")`, "--poem", "--iface", `(default "localhost")`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("fastpoetry --help lacks %q:\n%s", want, stdout)
		}
	}
	if code != 0 {
		t.Errorf("plugin --help exit %d", code)
	}
	code, stdout, _ = testutil.Run(t, "", timeout, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "twistd (the Go twistd) ") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	version := stdout
	code, stdout, _ = testutil.Run(t, "", timeout, "version")
	if code != 0 || stdout != version {
		t.Errorf("version: exit %d, %q; want %q", code, stdout, version)
	}
}

// --help, -h and --version before a plugin name print and exit 0: nothing
// starts (the port stays free) and no file is written.
func TestHelpBeforePlugin(t *testing.T) {
	port := testutil.FreePort(t)
	for _, flag := range []string{"--help", "-h", "--version"} {
		dir := t.TempDir()
		code, stdout, stderr := testutil.Run(t, dir, timeout, flag, "echo", "--port", fmt.Sprint(port), "--iface", "127.0.0.1")
		want := "twistd [options] echo [plugin options]"
		if flag == "--version" {
			want = "twistd (the Go twistd) "
		}
		if code != 0 || !strings.Contains(stdout, want) || stderr != "" {
			t.Errorf("%s echo: exit %d, stdout %q, stderr %q; want 0 and %q", flag, code, stdout, stderr, want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("%s echo wrote %v", flag, entries)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("%s echo: something holds the port: %v", flag, err)
		}
		ln.Close()
	}
}

// Every plugin's command parses --help in-process: flag shorthand clashes
// between runner and plugin only show up at run time, so catch them here.
func TestEveryPluginParses(t *testing.T) {
	for _, m := range plugins.All() {
		var out, errb bytes.Buffer
		if code := app.Main([]string{"-n", "-l", "-", m.Name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d: %s", m.Name, code, errb.String())
		}
		if !strings.Contains(out.String(), m.Name) {
			t.Errorf("%s --help does not name the plugin", m.Name)
		}
	}
}

// A plain `go build` (no -X from the Makefile) still says which revision
// it is.
func TestVersionOfPlainBuild(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("skipped: needs git for the go command's VCS stamp")
	}
	if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("skipped: not in a git checkout")
	}
	bin := filepath.Join(t.TempDir(), "twistd")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if info, _ := exec.Command("go", "version", "-m", bin).Output(); !bytes.Contains(info, []byte("vcs.revision")) {
		t.Skip("skipped: the go command recorded no VCS revision here (a git worktree, or GOFLAGS=-buildvcs=false)")
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^twistd \(the Go twistd\) (v\d+\.\d+\.\d+\S*|dev \([0-9a-f]{7}(, modified)?\))\n$`).Match(out) {
		t.Fatalf("--version of a plain build: %q", out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
