package echo_test

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

func needNC(t *testing.T) {
	if _, err := exec.LookPath("nc"); err != nil {
		t.Skip("nc not installed (Debian package netcat-openbsd)")
	}
}

// nc runs OpenBSD netcat with stdin and returns what it printed.
func nc(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nc", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nc %v: %v (output %q)", args, err, out)
	}
	return string(out)
}

func startEcho(t *testing.T, args ...string) (*testutil.Proc, string) {
	t.Helper()
	p := testutil.Start(t, "", args...)
	addr := p.ListenAddr(t)
	t.Cleanup(func() {
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM\n%s", code, p.Stdout)
		}
	})
	return p, addr
}

func TestEchoTCPAndUDPWithNetcat(t *testing.T) {
	needNC(t)
	p, addr := startEcho(t, "-n", "--logfile", "-", "echo", "--port", "0", "--iface", "127.0.0.1", "--udp")
	host, port, _ := net.SplitHostPort(addr)
	p.WaitFor(t, "listening on udp "+addr, 5*time.Second)

	msg := "hello, echo\nsecond line\n"
	if got := nc(t, msg, "-N", host, port); got != msg {
		t.Fatalf("tcp echo via nc: %q, want %q", got, msg)
	}
	if got := nc(t, "ping", "-u", "-w", "1", host, port); got != "ping" {
		t.Fatalf("udp echo via nc: %q, want %q", got, "ping")
	}
}

// The runner's --max-connections reaches the echo listener: a second
// client waits, unread, and is answered in full once the first leaves.
func TestEchoMaxConnections(t *testing.T) {
	needNC(t)
	p, addr := startEcho(t, "-n", "--logfile", "-", "--max-connections", "1", "echo", "--port", "0", "--iface", "127.0.0.1")
	host, port, _ := net.SplitHostPort(addr)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(10 * time.Second))
	first.Write([]byte("a"))
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	queued := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "nc", "-N", host, port)
		cmd.Stdin = strings.NewReader("queued\n")
		out, _ := cmd.Output()
		queued <- string(out)
	}()
	p.WaitFor(t, "connection limit of 1 reached: new clients wait", 5*time.Second)
	first.Close()
	p.WaitFor(t, "wait queue drained", 5*time.Second)
	// nc sent its line and half-closed while waiting: it stays queued and
	// gets the whole echo.
	if got := <-queued; got != "queued\n" {
		t.Fatalf("queued client got %q", got)
	}
}

func TestEchoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "echo", "--udp", "--port", "unix:/tmp/echo.sock"}, "--udp needs a TCP port"},
		{[]string{"-n", "echo", "--idle-timeout", "-1s"}, "--idle-timeout: must not be negative"},
		{[]string{"-n", "--max-connections=-1", "echo"}, "--max-connections: must not be negative"},
		{[]string{"-n", "echo", "--port", "70000"}, "not a port number"},
	} {
		code, _, stderr := testutil.Run(t, "", 10*time.Second, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
