package app_test

import (
	"bytes"
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

// A start-up that fails after an earlier service started unwinds under
// --grace: here the first service already serves a client that reads
// nothing of a 16 MiB poem (it was waiting in the listen queue of a socket
// passed in as systemd does), and the second fails in Start (its poem is
// unreadable once the daemon runs as nobody). Without the bound the unwind
// waits for that client for ever.
func TestFailedStartUnwindsWithinGrace(t *testing.T) {
	requireRoot(t)
	dir := nobodyDir(t)
	big := bytes.Repeat([]byte("Whose woods these are I think I know.\n"), 16<<20/38)
	if err := os.WriteFile(filepath.Join(dir, "big.txt"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := `name = "unwind"
[runner]
grace = "1s"
[[service]]
plugin = "fastpoetry"
name = "first"
[service.options]
port = "systemd:domain=INET:index=0"
poem = "big.txt"
[[service]]
plugin = "fastpoetry"
name = "second"
[service.options]
port = 0
iface = "127.0.0.1"
poem = "secret.txt"
`
	if err := os.WriteFile(filepath.Join(dir, "unwind.toml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	f, addr := passedSocket(t)
	// The slow client: connected before the daemon starts, never reads.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	cmd := socketActivated(t, f, "-n", "--uid", "nobody", "--gid", "nogroup", "-y", "unwind.toml")
	start := time.Now()
	p := testutil.StartCmd(t, cmd, dir)
	code := p.Wait(t, 15*time.Second)
	took := time.Since(start)
	out := p.Stdout.String()
	if code != 1 || !strings.Contains(out, "start-up failed: poem ") || !strings.Contains(out, "secret.txt: permission denied") {
		t.Fatalf("exit %d after %v; want 1 and the poem's error:\n%s", code, took, out)
	}
	if !strings.Contains(out, "grace period over") && !strings.Contains(out, "closed") {
		t.Logf("log:\n%s", out)
	}
	t.Logf("failed start unwound in %v with --grace 1s", took.Round(time.Millisecond))
	if took > 8*time.Second {
		t.Errorf("unwinding took %v with --grace 1s", took)
	}
}

// SIGTERM while a service is stuck starting (its password file is a FIFO
// nobody writes) abandons the start-up at once: exit 1 with one line,
// nothing left behind.
func TestSignalDuringStartup(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	args := hangingStart(t, dir)
	args[2] = fmt.Sprintf("tcp:%d:interface=127.0.0.1", port)
	p := testutil.Start(t, dir, append([]string{"-n", "--grace", "1s"}, args...)...)
	// The last line before the services start; the password file blocks.
	p.WaitFor(t, "descriptor limit", 10*time.Second)
	sent := time.Now()
	p.Signal(t, syscall.SIGTERM)
	code := p.Wait(t, 10*time.Second)
	out := p.Stdout.String()
	if code != 1 || !strings.Contains(out, "start-up abandoned: received SIGTERM") {
		t.Fatalf("exit %d; want 1 and the abandoned start-up:\n%s", code, out)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, "twistd.pid")); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("port still held: %v", err)
	} else {
		ln.Close()
	}
}

// --logfile-max-size 0 never rotates (for logrotate users): a log already
// past 1 MiB grows in place, with no rotated file beside it.
func TestLogNoSizeRotation(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	log := filepath.Join(dir, "big.log")
	if err := os.WriteFile(log, bytes.Repeat([]byte("old line\n"), 2<<20/9), 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(log)
	p := testutil.Start(t, dir, "-n", "--logfile", "big.log", "--logfile-max-size", "0", "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
	waitFile(t, log, "] started\n", 10*time.Second)
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	after, _ := os.Stat(log)
	entries, _ := os.ReadDir(dir)
	if after.Size() <= before.Size() || len(entries) != 2 {
		t.Fatalf("log %d -> %d bytes, directory %v; want it grown in place", before.Size(), after.Size(), entries)
	}
}

// A descriptor limit too small for --max-connections is a warning at
// start-up, after the "descriptor limit" line: 256 cannot hold 1,000
// connections. Without --max-connections, or with 100, 256 is enough and
// nothing is said.
func TestDescriptorLimitBelowMaxConnectionsWarns(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	for _, c := range []struct {
		runner []string
		warn   bool
	}{
		{[]string{"--max-connections", "1000"}, true},
		{nil, false},
		{[]string{"--max-connections", "100"}, false},
	} {
		dir := t.TempDir()
		args := append([]string{"--nofile=256:256", testutil.Binary(t), "-n", "--pidfile", filepath.Join(dir, "twistd.pid")}, c.runner...)
		p := testutil.StartCmd(t, exec.Command(prlimit, append(args, "echo", "--port", "tcp:0:interface=127.0.0.1")...), dir)
		// The limit is logged before the services start.
		p.ListenAddr(t)
		out := p.Stdout.String()
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Fatalf("%v: exit %d\n%s", c.runner, code, p.Stdout)
		}
		if !strings.Contains(out, "descriptor limit 256\n") {
			t.Fatalf("%v: no \"descriptor limit 256\" line:\n%s", c.runner, out)
		}
		const warning = "WARNING: descriptor limit 256 is below the 1064 that --max-connections 1000 needs"
		if got := strings.Contains(out, "WARNING: descriptor limit"); got != c.warn || c.warn && !strings.Contains(out, warning) {
			t.Errorf("%v: warning %v, want %v (%q):\n%s", c.runner, got, c.warn, warning, out)
		}
	}
}
