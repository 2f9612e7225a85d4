package ftplite

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// TestBinary runs the real twistd: serve a file to curl, close an idle
// session with 421 on SIGTERM, exit 0.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello from the binary\n"), 0o644))
	p := testutil.Start(t, dir, "-n", "--logfile", "-", "ftp-lite", "--port", "tcp:0:interface=127.0.0.1", "--root", root)
	addr := p.ListenAddr(t)
	_, port, _ := net.SplitHostPort(addr)

	code, out := curl(t, "ftp://127.0.0.1:"+port+"/hello.txt")
	if code != 0 || out != "hello from the binary\n" {
		t.Fatalf("curl: exit %d %q", code, out)
	}
	c := dialCtrl(t, addr)
	c.login("anonymous", "x@")
	p.Signal(t, syscall.SIGTERM)
	if code, msg := c.read(); code != 421 {
		t.Fatalf("idle session at shutdown got %d %s", code, msg)
	}
	c.c.Close()
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stdout)
	}
	if !strings.Contains(p.Stdout.String(), "anonymous login") {
		t.Fatalf("log:\n%s", p.Stdout)
	}
}

// TestBinaryBadConfig: a plain-text password file is refused at start
// (exit 1, one line); bad flags are usage errors (exit 2).
func TestBinaryBadConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	must(t, os.WriteFile(pw, []byte("bob:hunter2\n"), 0o600))
	code, _, stderr := testutil.Run(t, dir, 20*time.Second, "-n", "--logfile", "-", "ftp-lite",
		"--port", "tcp:0:interface=127.0.0.1", "--root", dir, "--password-file", pw)
	if code != 1 || !strings.Contains(stderr, "not a bcrypt hash") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("plain-text password file: exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{
		{"--passive-ports", "100-50"},
		{"--public-address", "::1"},
		{"--tls-required"},
		{"--tls-cert", "x.pem"},
		{"--port", "tcp:notaport"},
	} {
		code, _, stderr := testutil.Run(t, dir, 20*time.Second, append([]string{"-n", "ftp-lite", "--root", dir}, args...)...)
		if code != 2 || !strings.HasPrefix(stderr, "twistd: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
