// Package testutil runs the real twistd binary in tests: build it once,
// start it, wait for log lines, and make sure every process started is
// ended by PID even when the test fails.
package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a twistd binary built from this tree (once
// per test process). TWISTD_BIN overrides it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TWISTD_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twistd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		// Readable by all: some tests run the binary as nobody.
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "twistd")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/twistd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago, for
// a process that must bind it itself. It picks below the kernel's ephemeral
// range: a port the kernel handed out for port 0 is also what it hands to
// the next outgoing connection, and the tests make thousands of those, so
// such a port is often taken again before the server under test binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralLow()
	const base = 10000
	for range 200 {
		port := base + rand.IntN(lo-base)
		portsMu.Lock()
		seen := handedOut[port]
		handedOut[port] = true
		portsMu.Unlock()
		if seen {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free port found in %d-%d", base, lo-1)
	return 0
}

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{} // never the same port twice in one process
)

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 11000 {
		return fallback
	}
	return lo
}

// Buffer is a goroutine-safe bytes.Buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Proc is a started process with captured output.
type Proc struct {
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer
	done   chan struct{}
	err    error
}

// Start runs the twistd binary with args in dir ("" = a fresh temp dir). The
// process is killed by PID at cleanup if still running.
func Start(t testing.TB, dir string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, exec.Command(Binary(t), args...), dir)
}

// StartCmd starts cmd like Start.
func StartCmd(t testing.TB, cmd *exec.Cmd, dir string) *Proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	p := &Proc{Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
			t.Logf("killed pid %d at cleanup; stdout:\n%s\nstderr:\n%s", cmd.Process.Pid, p.Stdout, p.Stderr)
		}
	})
	return p
}

// WaitFor waits until the combined output contains s, failing the test
// after timeout or if the process exits first.
func (p *Proc) WaitFor(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Stdout.String(), s) || strings.Contains(p.Stderr.String(), s) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.Stdout.String(), s) || strings.Contains(p.Stderr.String(), s) {
				return
			}
			t.Fatalf("process exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", p.err, s, p.Stdout, p.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no %q after %v\nstdout:\n%s\nstderr:\n%s", s, timeout, p.Stdout, p.Stderr)
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Wait waits for the exit and returns the exit code (-1 if killed by a
// signal), failing the test after timeout.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process %d still running after %v\nstdout:\n%s\nstderr:\n%s", p.Cmd.Process.Pid, timeout, p.Stdout, p.Stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// Run runs the binary to completion (bounded by timeout) and returns exit
// code, stdout and stderr.
func Run(t testing.TB, dir string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	p := Start(t, dir, args...)
	code := p.Wait(t, timeout)
	return code, p.Stdout.String(), p.Stderr.String()
}

// ListenAddr extracts the address from the first "listening on ADDR" line.
func (p *Proc) ListenAddr(t testing.TB) string {
	t.Helper()
	p.WaitFor(t, "listening on ", 10*time.Second)
	out := p.Stdout.String() + p.Stderr.String()
	i := strings.Index(out, "listening on ")
	rest := out[i+len("listening on "):]
	if j := strings.IndexAny(rest, " \n"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// ServeBare runs a plain goroutine-per-connection stdlib server on
// 127.0.0.1 that calls handle for each connection and closes it
// afterwards: the baseline the benchmarks compare against, and a
// hand-written peer in tests. It stops when the test or
// benchmark ends, after every handler has returned.
func ServeBare(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				handle(c)
				c.Close()
			})
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}
