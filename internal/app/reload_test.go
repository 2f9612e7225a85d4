package app_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/testutil"
)

// privateBinary copies the twistd binary into dir, so a test may replace
// the file the daemon was started from.
func privateBinary(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(testutil.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "twistd")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// replaceBinary puts a fresh copy of the binary at bin, as a package
// upgrade does: a new file renamed over the old one.
func replaceBinary(t *testing.T, bin string) {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
}

// reloadCmd runs `twistd reload` in dir with bin and returns its exit code
// and output.
func reloadCmd(t *testing.T, bin, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "reload")...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func writeBytes(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := bytes.Repeat([]byte("Whose woods these are I think I know.\n"), n/38+1)[:n]
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// Eight clients loop over a 1 MiB poem while the daemon reloads three
// times, once after its binary was replaced on disk: no client is refused,
// reset or cut short; each reload names a new pid that runs the file now
// on disk; a 48 MiB download started before the first reload completes
// from the old process, which exits once it is done.
func TestReloadRefusesNoClient(t *testing.T) {
	dir := t.TempDir()
	bin := privateBinary(t, dir)
	small := writeBytes(t, filepath.Join(dir, "small.txt"), 1<<20)
	big := writeBytes(t, filepath.Join(dir, "big.txt"), 48<<20)
	smallPort, bigPort := testutil.FreePort(t), testutil.FreePort(t)
	app := fmt.Sprintf(`name = "reloading"
[runner]
pidfile = "r.pid"
grace = "60s"
[[service]]
plugin = "fastpoetry"
name = "small"
[service.options]
port = %d
iface = "127.0.0.1"
poem = "small.txt"
[[service]]
plugin = "fastpoetry"
name = "big"
[service.options]
port = %d
iface = "127.0.0.1"
poem = "big.txt"
`, smallPort, bigPort)
	os.WriteFile(filepath.Join(dir, "r.toml"), []byte(app), 0o644)
	pidfile := filepath.Join(dir, "r.pid")
	first := startDaemonCmd(t, exec.Command(bin, "-y", "r.toml"), dir, pidfile)

	// The big download, read slowly enough to outlast the reloads.
	bigDone := make(chan error, 1)
	bc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", bigPort))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	head := make([]byte, 1<<16)
	if _, err := io.ReadFull(bc, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		got := append([]byte(nil), head...)
		buf := make([]byte, 1<<20)
		bc.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			n, err := bc.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				bigDone <- err
				return
			}
			time.Sleep(40 * time.Millisecond) // about 25 MiB/s at most
		}
		if !bytes.Equal(got, big) {
			bigDone <- fmt.Errorf("got %d of %d bytes", len(got), len(big))
			return
		}
		bigDone <- nil
	}()

	var stop atomic.Bool
	var served, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(40 * time.Second)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() && time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", smallPort), 5*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					var got []byte
					got, err = io.ReadAll(c)
					c.Close()
					if err == nil && !bytes.Equal(got, small) {
						err = fmt.Errorf("short read: %d of %d bytes", len(got), len(small))
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				served.Add(1)
			}
		})
	}

	pids := []int{first}
	for i := range 3 {
		time.Sleep(200 * time.Millisecond)
		if i == 1 {
			replaceBinary(t, bin)
		}
		code, out := reloadCmd(t, bin, dir, "-y", "r.toml")
		if code != 0 || !strings.Contains(out, "reloaded twistd: pid ") {
			t.Fatalf("reload %d: exit %d: %s", i+1, code, out)
		}
		t.Logf("reload %d: %s", i+1, strings.TrimSpace(out))
		pid, err := daemon.ReadPidfile(pidfile)
		if err != nil {
			t.Fatal(err)
		}
		killAtCleanup(t, pid)
		if pid == pids[len(pids)-1] {
			t.Fatalf("reload %d: the pidfile still names %d", i+1, pid)
		}
		pids = append(pids, pid)
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != bin {
			t.Errorf("reload %d: pid %d runs %q (%v), want the file now at %s", i+1, pid, exe, err, bin)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d downloads of 1 MiB across 3 reloads, %d failed", served.Load(), failed.Load())
	if failed.Load() > 0 || served.Load() == 0 {
		t.Errorf("%d of %d downloads failed (first: %v)", failed.Load(), failed.Load()+served.Load(), firstErr.Load())
	}
	if err := <-bigDone; err != nil {
		t.Errorf("the 48 MiB download begun before the first reload: %v", err)
	}
	// The replaced processes exit once their clients are done.
	for _, pid := range pids[:len(pids)-1] {
		waitGone(t, pid, 20*time.Second)
	}
	code, out := reloadCmd(t, bin, dir, "-y", "r.toml")
	if code != 0 {
		t.Fatalf("a fourth reload: exit %d: %s", code, out)
	}
	ctl(t, dir, 0, `^twistd is running: pid \d+, up \d+s, application reloading \(.*r\.toml\), reloaded \d+s ago\n$`, "-y", "r.toml", "status")
	last, _ := daemon.ReadPidfile(pidfile)
	killAtCleanup(t, last)
	stopDaemon(t, last, pidfile)
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(dir, "twistd.log"))
		t.Logf("log:\n%s", b[max(0, len(b)-3000):])
	}
}

// A replacement that refuses the application file leaves the daemon
// serving with its pid; reload says why with the file's line, exit 2.
func TestReloadBrokenFileKeepsServing(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	port := testutil.FreePort(t)
	good := fmt.Sprintf("name = \"p\"\n[runner]\npidfile = \"p.pid\"\n[[service]]\nplugin = \"fastpoetry\"\n[service.options]\nport = %d\niface = \"127.0.0.1\"\npoem = \"poem.txt\"\n", port)
	os.WriteFile(filepath.Join(dir, "p.toml"), []byte(good), 0o644)
	pidfile := filepath.Join(dir, "p.pid")
	pid := startDaemon(t, dir, pidfile, "-y", "p.toml")
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	os.WriteFile(filepath.Join(dir, "p.toml"), []byte(strings.Replace(good, "poem = ", "peom = ", 1)), 0o644)
	code, out := reloadCmd(t, testutil.Binary(t), dir, "-y", "p.toml")
	if code != 2 || !strings.Contains(out, "p.toml:9") || strings.Count(out, "\n") != 1 {
		t.Fatalf("reload with a broken file: exit %d: %q; want 2 and one line naming p.toml:9", code, out)
	}
	t.Log(strings.TrimSpace(out))
	if now, _ := daemon.ReadPidfile(pidfile); now != pid {
		t.Fatalf("the pidfile names %d, want %d", now, pid)
	}
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("after the failed reload: %q", got)
	}
	// A port it cannot bind fails the same way, with exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	os.WriteFile(filepath.Join(dir, "p.toml"), []byte(good+fmt.Sprintf("[[service]]\nplugin = \"echo\"\n[service.options]\nport = %d\niface = \"127.0.0.1\"\n", taken)), 0o644)
	code, out = reloadCmd(t, testutil.Binary(t), dir, "-y", "p.toml")
	if code != 1 || !strings.Contains(out, "cannot listen on 127.0.0.1:") {
		t.Fatalf("reload onto a taken port: exit %d: %q", code, out)
	}
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("after the second failed reload: %q", got)
	}
	stopDaemon(t, pid, pidfile)
}

// UDP echo and a unix-socket endpoint keep answering across a reload;
// under a (fake) systemd notify socket the old process says RELOADING=1
// and the new one MAINPID= and READY=1.
func TestReloadUDPUnixAndNotify(t *testing.T) {
	dir := t.TempDir()
	sock, msgs := notifySocket(t)
	port := testutil.FreePort(t)
	usock := filepath.Join(dir, "echo.sock")
	app := fmt.Sprintf("name = \"e\"\n[runner]\npidfile = \"e.pid\"\n[[service]]\nplugin = \"echo\"\nname = \"udp\"\n[service.options]\nport = %d\niface = \"127.0.0.1\"\nudp = true\n[[service]]\nplugin = \"echo\"\nname = \"unix\"\n[service.options]\nport = \"unix:%s\"\n", port, usock)
	os.WriteFile(filepath.Join(dir, "e.toml"), []byte(app), 0o644)
	// The log goes to a file: the replacement keeps the stdout it
	// inherits, so a pipe there would stay open after the old one exits.
	killPidfileOwnerAtCleanup(t, filepath.Join(dir, "e.pid"))
	cmd := exec.Command(testutil.Binary(t), "-n", "--logfile", "e.log", "-y", "e.toml")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, cmd.Process.Pid)
	exited := make(chan *os.ProcessState, 1)
	go func() { st, _ := cmd.Process.Wait(); exited <- st }()
	waitFile(t, filepath.Join(dir, "e.log"), "] started\n", 10*time.Second)
	expectNotify(t, msgs, "READY=1")
	echoUDP := func() string {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("ping"))
		buf := make([]byte, 16)
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	echoUnix := func() string {
		c, err := net.Dial("unix", usock)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("pong"))
		buf := make([]byte, 4)
		io.ReadFull(c, buf)
		return string(buf)
	}
	if echoUDP() != "ping" || echoUnix() != "pong" {
		t.Fatal("no echo before the reload")
	}
	old := cmd.Process.Pid
	syscall.Kill(old, syscall.SIGUSR2)
	expectNotify(t, msgs, "RELOADING=1")
	pid := expectMainPID(t, msgs)
	if now, err := daemon.ReadPidfile(filepath.Join(dir, "e.pid")); err != nil || now != pid || pid == old {
		t.Fatalf("pidfile after the reload: %d, %v; MAINPID=%d, old %d", now, err, pid, old)
	}
	killAtCleanup(t, pid)
	select {
	case st := <-exited:
		if st.ExitCode() != 0 {
			t.Fatalf("the replaced process: %v", st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the replaced process did not exit")
	}
	for i := range 5 {
		if got := echoUDP(); got != "ping" {
			t.Fatalf("udp echo %d after the reload: %q", i, got)
		}
		if got := echoUnix(); got != "pong" {
			t.Fatalf("unix echo %d after the reload: %q", i, got)
		}
	}
	syscall.Kill(pid, syscall.SIGTERM)
	waitGone(t, pid, 10*time.Second)
	if _, err := os.Stat(usock); !os.IsNotExist(err) {
		t.Errorf("the unix socket file is left after the stop: %v", err)
	}
}

// expectMainPID waits for the datagram in which a replacement names
// itself the main process and says it is ready, and returns its pid.
func expectMainPID(t *testing.T, msgs <-chan string) int {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			var pid int
			if _, err := fmt.Sscanf(m, "MAINPID=%d\n", &pid); err == nil {
				if !strings.Contains(m, "\nREADY=1") {
					t.Fatalf("MAINPID without READY=1: %q", m)
				}
				return pid
			}
		case <-timeout:
			t.Fatal("no MAINPID= on the notify socket")
		}
	}
}

// chatConn is a raw chat client: frames of a 12-byte big-endian header
// (total length, version, command) and a JSON body.
type chatConn struct {
	t *testing.T
	c net.Conn
}

func dialChat(t *testing.T, addr, id string) *chatConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cc := &chatConn{t: t, c: c}
	cc.send(1, 1, `{"phone_number":`+id+`}`)
	if cmd, body, err := cc.next(); err != nil || cmd != 101 || !strings.Contains(body, `"code":1`) {
		t.Fatalf("login %s: %d %q %v", id, cmd, body, err)
	}
	return cc
}

func (cc *chatConn) send(version, cmd uint32, body string) {
	b := binary.BigEndian.AppendUint32(nil, uint32(12+len(body)))
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint32(b, cmd)
	if _, err := cc.c.Write(append(b, body...)); err != nil {
		cc.t.Fatal(err)
	}
}

func (cc *chatConn) next() (uint32, string, error) {
	cc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h := make([]byte, 12)
	if _, err := io.ReadFull(cc.c, h); err != nil {
		return 0, "", err
	}
	body := make([]byte, binary.BigEndian.Uint32(h)-12)
	_, err := io.ReadFull(cc.c, body)
	return binary.BigEndian.Uint32(h[8:]), string(body), err
}

// alive proves the session is served: an unknown command gets its error.
func (cc *chatConn) alive() bool {
	cc.send(9, 999, "")
	cmd, _, err := cc.next()
	return err == nil && cmd == 199
}

// A chat session begun before a reload stays with the old process until
// --grace runs out, then is closed; a client after the reload is served
// by the new process (the in-process hubs are separate: a message between
// the two is undelivered, 410).
func TestReloadChatSessions(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pidfile := filepath.Join(dir, "twistd.pid")
	first := startDaemon(t, dir, pidfile, "--grace", "2s", "chat", "--port", fmt.Sprint(port), "--iface", "127.0.0.1")
	alice := dialChat(t, addr, `"1001"`)
	code, out := reloadCmd(t, testutil.Binary(t), dir)
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, out)
	}
	second, _ := daemon.ReadPidfile(pidfile)
	killAtCleanup(t, second)
	bob := dialChat(t, addr, `"1002"`)
	reloaded := time.Now()
	if !alice.alive() || !bob.alive() {
		t.Fatal("a session is not served after the reload")
	}
	bob.send(1, 2, `{"chat_from":"1002","chat_to":"1001","chat_content":"hi"}`)
	if cmd, body, err := bob.next(); err != nil || cmd != 199 || !strings.Contains(body, `"code":410`) {
		t.Errorf("bob to alice across processes: %d %q %v; want 410", cmd, body, err)
	}
	// Alice's session ends with the old process's grace.
	alice.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, alice.c)
	took := time.Since(reloaded)
	if err != nil || took < time.Second {
		t.Errorf("alice's session ended after %v (%v); want at --grace 2s", took, err)
	}
	waitGone(t, first, 10*time.Second)
	if !bob.alive() {
		t.Fatal("bob's session on the new process ended")
	}
	stopDaemon(t, second, pidfile)
}

// A daemon that dropped to nobody reloads as nobody: the inherited port 21
// keeps working, while a new port below 1024, which nobody cannot bind,
// fails the reload with one line and the old process serves on.
func TestReloadAfterPrivilegeDrop(t *testing.T) {
	requireRoot(t)
	portFree(t, "127.0.0.4:21")
	portFree(t, "127.0.0.4:23")
	dir := nobodyDir(t)
	writePoem(t, dir)
	app := "name = \"low\"\n[runner]\nuid = \"nobody\"\ngid = \"nogroup\"\n[[service]]\nplugin = \"fastpoetry\"\n[service.options]\nport = 21\niface = \"127.0.0.4\"\npoem = \"poem.txt\"\n"
	os.WriteFile(filepath.Join(dir, "low.toml"), []byte(app), 0o644)
	pidfile := filepath.Join(dir, "twistd.pid")
	first := startDaemon(t, dir, pidfile, "-y", "low.toml")
	code, out := reloadCmd(t, testutil.Binary(t), dir, "-y", "low.toml")
	if code != 0 {
		t.Fatalf("reload as nobody: exit %d: %s", code, out)
	}
	second, _ := daemon.ReadPidfile(pidfile)
	killAtCleanup(t, second)
	if second == first || procIDs(t, second, "Uid")[0] != "65534" {
		t.Fatalf("replacement pid %d (was %d), uid %v", second, first, procIDs(t, second, "Uid"))
	}
	if got := fetch(t, "127.0.0.4:21"); got != testPoem {
		t.Fatalf("port 21 after the reload: %q", got)
	}
	os.WriteFile(filepath.Join(dir, "low.toml"), []byte(app+"[[service]]\nplugin = \"echo\"\n[service.options]\nport = 23\niface = \"127.0.0.4\"\n"), 0o644)
	code, out = reloadCmd(t, testutil.Binary(t), dir, "-y", "low.toml")
	if code != 1 || !strings.Contains(out, "cannot listen on 127.0.0.4:23: permission denied") || strings.Count(out, "\n") != 1 {
		t.Fatalf("reload onto port 23 as nobody: exit %d: %q", code, out)
	}
	if now, _ := daemon.ReadPidfile(pidfile); now != second {
		t.Fatalf("pidfile names %d after the failed reload, want %d", now, second)
	}
	if got := fetch(t, "127.0.0.4:21"); got != testPoem {
		t.Fatalf("port 21 after the failed reload: %q", got)
	}
	stopDaemon(t, second, pidfile)
}

// A reload whose new process hangs (its password file became a FIFO) is
// in progress until --start-timeout: a second reload meanwhile is refused,
// and the first ends with the new process killed and the old one serving.
func TestReloadTwiceAtOnce(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	port := testutil.FreePort(t)
	os.WriteFile(filepath.Join(dir, "passwd"), []byte("# nobody yet\n"), 0o600)
	pidfile := filepath.Join(dir, "twistd.pid")
	pid := startDaemon(t, dir, pidfile, "--start-timeout", "3s", "ftp-lite", "--port", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--root", dir, "--password-file", "passwd")
	os.Remove(filepath.Join(dir, "passwd"))
	if err := syscall.Mkfifo(filepath.Join(dir, "passwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		code, out := reloadCmd(t, testutil.Binary(t), dir)
		first <- fmt.Sprintf("%d %s", code, out)
	}()
	// Wait until the daemon records the reload in progress.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if info, ok := daemon.ReadInfo(pidfile, pid); ok && info.Reloading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never recorded a reload in progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out := reloadCmd(t, testutil.Binary(t), dir)
	if code != 1 || !strings.Contains(out, "is already reloading") {
		t.Errorf("second reload during the first: exit %d: %q", code, out)
	}
	got := <-first
	if !strings.HasPrefix(got, "1 ") || !strings.Contains(got, "not ready after 3s") {
		t.Errorf("the first reload: %q; want exit 1 and the timeout", got)
	}
	if now, _ := daemon.ReadPidfile(pidfile); now != pid {
		t.Fatalf("pidfile names %d, want %d", now, pid)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the old process does not serve: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting := make([]byte, 3)
	io.ReadFull(c, greeting)
	c.Close()
	if string(greeting) != "220" {
		t.Fatalf("greeting %q", greeting)
	}
	stopDaemon(t, pid, pidfile)
}

// A socket systemd passed in by name travels to the replacement like any
// other; the replacement does not look at LISTEN_FDS (it has none).
func TestReloadKeepsSystemdSocket(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	f, addr := passedSocket(t)
	killPidfileOwnerAtCleanup(t, filepath.Join(dir, "twistd.pid"))
	cmd := socketActivated(t, f, "-n", "--logfile", "t.log", "fastpoetry", "--port", "systemd:name=poetry", "--poem", "poem.txt")
	cmd.Env = append(os.Environ(), "LISTEN_FDNAMES=poetry")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, cmd.Process.Pid)
	go cmd.Wait()
	waitFile(t, filepath.Join(dir, "t.log"), "] started\n", 10*time.Second)
	f.Close()
	code, out := reloadCmd(t, testutil.Binary(t), dir)
	if code != 0 {
		t.Fatalf("reload: exit %d: %s", code, out)
	}
	pid, _ := daemon.ReadPidfile(filepath.Join(dir, "twistd.pid"))
	killAtCleanup(t, pid)
	waitGone(t, cmd.Process.Pid, 10*time.Second)
	if got := fetch(t, addr); got != testPoem {
		t.Fatalf("after the reload: %q", got)
	}
	stopDaemon(t, pid, filepath.Join(dir, "twistd.pid"))
}

// With no daemon there is nothing to reload: one line, exit 1.
func TestReloadNothingRuns(t *testing.T) {
	dir := t.TempDir()
	ctl(t, dir, 1, `^twistd: nothing to reload: no pidfile .*twistd\.pid \(twistd is not running\)\n$`, "reload")
	os.WriteFile(filepath.Join(dir, "twistd.pid"), []byte("999999999\n"), 0o644)
	ctl(t, dir, 1, `^twistd: nothing to reload: the pidfile .* is stale: pid 999999999 does not exist\n$`, "reload")
}
