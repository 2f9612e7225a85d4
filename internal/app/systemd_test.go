package app_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// notifySocket listens where a service manager would and returns the
// datagrams it receives.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	return path, datagrams(t, path)
}

// datagrams listens on a unixgram socket at path until the test ends and
// returns what arrives, one datagram per string.
func datagrams(t *testing.T, path string) <-chan string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

func expectNotify(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q on the notify socket", want)
		}
	}
}

// Under a Type=notify unit: READY=1 once serving, WATCHDOG=1 pings when
// WATCHDOG_USEC is set, STOPPING=1 when shutdown begins.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	sock, msgs := notifySocket(t)
	cmd := exec.Command(testutil.Binary(t), "-n", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	p := testutil.StartCmd(t, cmd, dir)
	expectNotify(t, msgs, "READY=1")
	if got := fetch(t, p.ListenAddr(t)); got != testPoem {
		t.Errorf("after READY=1 served %q", got)
	}
	expectNotify(t, msgs, "WATCHDOG=1")
	expectNotify(t, msgs, "WATCHDOG=1")
	p.Signal(t, syscall.SIGTERM)
	expectNotify(t, msgs, "STOPPING=1")
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// Socket activation: the listening socket arrives as fd 3 with LISTEN_FDS
// and LISTEN_PID naming the process (set by a shell that then execs twistd,
// as systemd does between fork and exec).
func TestSystemdSocketActivation(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	f, addr := passedSocket(t)
	cmd := socketActivated(t, f, "-n", "fastpoetry", "--port", "systemd:domain=INET:index=0", "--poem", "poem.txt")
	p := testutil.StartCmd(t, cmd, dir)
	p.WaitFor(t, "listening on "+addr, 10*time.Second)
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("served %q", got)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Without sockets passed in: one line, exit 1.
	code, _, stderr := testutil.Run(t, dir, 10*time.Second, "-n", "fastpoetry", "--port", "systemd:domain=INET:index=0", "--poem", "poem.txt")
	if code != 1 || !strings.Contains(stderr, "no sockets passed by systemd") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// Socket activation by name, through systemd's own tool: it binds, execs
// twistd on the first connection with LISTEN_FDNAMES=poetry, and
// systemd:name=poetry serves that socket. A name systemd did not pass is
// one start-up line naming those it did.
func TestSystemdSocketActivationByName(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("skipped: systemd-socket-activate not installed (Debian package systemd)")
	}
	dir := t.TempDir()
	writePoem(t, dir)
	start := func(fdname string) (*testutil.Proc, string) {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		cmd := exec.Command(activate, "--fdname="+fdname, "-l", addr, testutil.Binary(t),
			"-n", "--pidfile=", "fastpoetry", "--port", "systemd:name=poetry", "--poem", "poem.txt")
		p := testutil.StartCmd(t, cmd, dir)
		p.WaitFor(t, "Listening on "+addr, 10*time.Second)
		return p, addr
	}

	p, addr := start("poetry")
	// The first connection makes systemd-socket-activate exec twistd, which
	// accepts it from the queue of the socket it was handed.
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("served %q\nstdout:\n%s\nstderr:\n%s", got, p.Stdout, p.Stderr)
	}
	p.WaitFor(t, "started listener (systemd:name=poetry)", 10*time.Second)
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stdout)
	}

	p, addr = start("web")
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		defer c.Close()
	}
	code := p.Wait(t, 10*time.Second)
	var ours []string
	for _, l := range strings.Split(p.Stderr.String(), "\n") {
		if strings.HasPrefix(l, "twistd: ") {
			ours = append(ours, l)
		}
	}
	want := `systemd:name=poetry: systemd passed no socket named "poetry" (passed: web)`
	if code != 1 || len(ours) != 1 || !strings.Contains(ours[0], want) {
		t.Fatalf("exit %d, twistd's lines %q; want 1 and one line with %q\nstderr:\n%s", code, ours, want, p.Stderr)
	}
}

// When stdout is the journal stream named by JOURNAL_STREAM, lines carry a
// <priority> prefix and no timestamp of ours.
func TestJournalOutput(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	out, err := os.Create(filepath.Join(dir, "journal.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var st syscall.Stat_t
	syscall.Fstat(int(out.Fd()), &st)
	for _, tc := range []struct {
		stream  string
		journal bool
	}{{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true}, {fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false}} {
		out.Truncate(0)
		out.Seek(0, 0)
		cmd := exec.Command(testutil.Binary(t), "-n", "--pidfile", "", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "nope.txt")
		cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+tc.stream)
		cmd.Dir, cmd.Stdout = dir, out
		cmd.Run()
		b, _ := os.ReadFile(out.Name())
		first := strings.SplitN(string(b), "\n", 2)[0]
		if got := strings.HasPrefix(first, "<6>[-] twistd "); got != tc.journal {
			t.Errorf("JOURNAL_STREAM %s: first line %q; journal format %v, want %v", tc.stream, first, got, tc.journal)
		}
		if tc.journal && !strings.Contains(string(b), "<3>[-] ERROR: start-up failed: poem nope.txt") {
			t.Errorf("no <3> error line:\n%s", b)
		}
	}
}
