package ftplite

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/internal/testutil"
)

// runPasswd runs `twistd ftp-lite passwd ARGS` with stdin and returns its
// exit code and output.
func runPasswd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t), append([]string{"ftp-lite", "passwd"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("passwd %v timed out", args)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	must(t, err)
	return 0, out.String(), errOut.String()
}

const pyPasswdLogin = `
import ftplib, io, sys
host, port, root, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
f = ftplib.FTP(); f.connect(host, port, timeout=20)
f.login(user, password)
f.storbinary("STOR made-by-" + user, io.BytesIO(b"hello\n"))
f.quit()
g = ftplib.FTP(); g.connect(host, port, timeout=20)
try:
    g.login(user, password + "x"); raise SystemExit("a wrong password was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("530"), e
print("OK")
`

// TestPasswdCommand makes a password-file line with the real binary (the
// password on stdin), starts the real server with that file and logs in
// with python3's ftplib; the same through a terminal (a pty), where the
// password must not be echoed. Bad input is one line and an exit code.
func TestPasswdCommand(t *testing.T) {
	needTool(t, "python3")
	code, line, stderr := runPasswd(t, "piped secret\n", "--cost", "5", "bob")
	if code != 0 || !strings.HasPrefix(line, "bob:$2") || stderr != "" {
		t.Fatalf("passwd: exit %d, stdout %q, stderr %q", code, line, stderr)
	}
	hash := strings.TrimSpace(strings.TrimPrefix(line, "bob:"))
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 5 {
		t.Errorf("cost %d (%v), want 5", cost, err)
	}
	ttyLine := passwdOnTerminal(t, "carol", "typed secret")

	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must(t, os.Mkdir(root, 0o755))
	pw := filepath.Join(dir, "passwd")
	must(t, os.WriteFile(pw, []byte(line+ttyLine), 0o600))
	p := testutil.Start(t, dir, "-n", "--logfile", "-", "ftp-lite", "--port", "tcp:0:interface=127.0.0.1",
		"--root", root, "--password-file", pw)
	ts := &testServer{root: root, logs: p.Stdout}
	ts.addr = p.ListenAddr(t)
	_, port, _ := net.SplitHostPort(ts.addr)
	ts.port, _ = strconv.Atoi(port)
	python(t, ts, "127.0.0.1", pyPasswdLogin, "bob", "piped secret")
	python(t, ts, "127.0.0.1", pyPasswdLogin, "carol", "typed secret")
	for _, u := range []string{"bob", "carol"} {
		if b, err := os.ReadFile(filepath.Join(root, "made-by-"+u)); err != nil || string(b) != "hello\n" {
			t.Errorf("upload by %s: %q %v", u, b, err)
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("server exit %d", code)
	}

	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"x\n", nil, 2, "want USER"},
		{"x\n", []string{"a", "b"}, 2, "want USER"},
		{"x\n", []string{"a:b"}, 1, "holds a colon"},
		{"x\n", []string{"#a"}, 1, "comment"},
		{"x\n", []string{"a b"}, 1, "white space"},
		{"\n", []string{"a"}, 1, "empty password"},
		{"", []string{"a"}, 1, "empty password"},
		{strings.Repeat("p", 73) + "\n", []string{"a"}, 1, "longer than 72 bytes"},
		{strings.Repeat("p", 5000), []string{"a"}, 1, "longer than 72 bytes"},
		{"x\n", []string{"--cost", "99", "a"}, 1, "--cost"},
		{"x\n", []string{"--nope", "a"}, 2, "--nope"},
	} {
		code, out, stderr := runPasswd(t, tc.stdin, tc.args...)
		if code != tc.code || out != "" || !strings.HasPrefix(stderr, "twistd: ftp-lite passwd: ") ||
			!strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("passwd %q with %d bytes on stdin: exit %d, stdout %q, stderr %q; want exit %d and one line with %q",
				tc.args, len(tc.stdin), code, out, stderr, tc.code, tc.want)
		}
	}
}

const pyPty = `
import os, pty, select, sys, time
binary, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "ftp-lite", "passwd", "--cost", "4", user])
out = b""
def read_until(want):
    global out
    deadline = time.monotonic() + 20
    while want not in out:
        if time.monotonic() > deadline:
            raise SystemExit("no %r in %r" % (want, out))
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                raise SystemExit("pty closed before %r in %r" % (want, out))
read_until(b"Password for " + user.encode() + b": ")
os.write(fd, password.encode() + b"\r")
read_until(b"Again: ")
os.write(fd, password.encode() + b"\r")
read_until(b"\n" + user.encode() + b":$2")
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
sys.stdout.write(out.decode())
`

// passwdOnTerminal runs passwd for user on a pseudo-terminal, typing
// password twice, and returns the line it printed. The password must not
// appear in what the terminal showed.
func passwdOnTerminal(t *testing.T, user, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "on_terminal.py")
	must(t, os.WriteFile(f, []byte(pyPty), 0o644))
	code, out := run(t, "", "python3", f, testutil.Binary(t), user, password)
	if code != 0 {
		t.Fatalf("passwd on a terminal: exit %d\n%s", code, out)
	}
	if strings.Contains(out, password) {
		t.Fatalf("the terminal echoed the password:\n%q", out)
	}
	i := strings.Index(out, user+":$2")
	if i < 0 {
		t.Fatalf("no %s line on the terminal:\n%q", user, out)
	}
	line, _, _ := strings.Cut(out[i:], "\n")
	return strings.TrimRight(line, "\r") + "\n"
}
