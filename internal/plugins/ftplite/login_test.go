package ftplite

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestDummyHashCost: unknown users are checked against a hash as costly
// as the costliest account, so their failed logins take as long.
func TestDummyHashCost(t *testing.T) {
	var lines string
	for user, cost := range map[string]int{"cheap": bcrypt.MinCost, "dear": bcrypt.MinCost + 2, "mid": bcrypt.MinCost + 1} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+user), cost)
		must(t, err)
		lines += user + ":" + string(h) + "\n"
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	must(t, os.WriteFile(pw, []byte(lines), 0o600))
	for _, tc := range []struct {
		file string
		want int
	}{{pw, bcrypt.MinCost + 2}, {"", bcrypt.MinCost}} {
		srv := newServer("ftp-lite", Config{Root: dir, PasswordFile: tc.file}, slog.Default())
		must(t, srv.PrivilegedStart(context.Background()))
		if got, err := bcrypt.Cost(srv.dummy); err != nil || got != tc.want {
			t.Errorf("password file %q: dummy hash cost %d (%v), want %d", tc.file, got, err, tc.want)
		}
		srv.Stop(context.Background())
	}
}

// fakeClock is the lock-out's clock in tests: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// greeting connects from local and returns the first reply line.
func greeting(t *testing.T, addr string, local net.IP) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting from %v: %v", local, err)
	}
	return line
}

// guessAndHangUp sends USER and a wrong PASS from local and hangs up as
// soon as the server has checked it, without waiting for the answer:
// the client of issue 13 that learns the verdict from the delay.
func (ts *testServer) guessAndHangUp(t *testing.T, local net.IP) {
	t.Helper()
	c := dialCtrlFrom(t, ts.addr, local)
	before := strings.Count(ts.logs.String(), `msg="failed login"`)
	c.send("USER " + testUser + "\r\nPASS wrong")
	ts.waitLogCount(t, `msg="failed login"`, before+1)
	c.c.Close()
}

// waitLogCount waits until s is in the log n times or more.
func (ts *testServer) waitLogCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(ts.logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q not %d times in the log:\n%s", s, n, ts.logs)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoginLockout: failures cost the address, whatever the client does.
// Three wrong guesses from 127.0.0.1, each sent by a client that hangs up
// right after PASS, get the address refused with 421 at connect and at
// USER (even with the right password); 127.0.0.2 logs in meanwhile. Once
// the period is over (on the test's clock) the right password works; a
// further failure locks the address for twice as long.
func TestLoginLockout(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	ts := newTestServer(t, func(c *Config) { c.now = clock.now })
	one, two := net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)

	// A session already open before the lock-out.
	early := dialCtrlFrom(t, ts.addr, one)
	for range lockAfter {
		ts.guessAndHangUp(t, one)
	}
	ts.waitLog(t, "peer=127.0.0.1 for=1m0s")
	if got := strings.Count(ts.logs.String(), `msg="failed login"`); got != lockAfter {
		t.Fatalf("%d failures logged, want %d", got, lockAfter)
	}
	if g := greeting(t, ts.addr, one); !strings.HasPrefix(g, "421 Too many failed logins from your address; try again in 1m0s.") {
		t.Fatalf("connect while refused: %q", g)
	}
	if code, msg := early.cmd("USER " + testUser); code != 421 {
		t.Fatalf("USER while refused: %d %s", code, msg)
	}
	// A client hammering a refused address gets one log line for it.
	for range 20 {
		greeting(t, ts.addr, one)
	}
	if n := strings.Count(ts.logs.String(), "too many failed logins from this address"); n != 1 {
		t.Errorf("%d refusals logged in one lock-out, want 1", n)
	}
	dialCtrlFrom(t, ts.addr, two).login(testUser, testPassword)

	clock.advance(59 * time.Second)
	if g := greeting(t, ts.addr, one); !strings.HasPrefix(g, "421 ") {
		t.Fatalf("connect 59 s into the lock-out: %q", g)
	}
	clock.advance(time.Second)
	c := dialCtrlFrom(t, ts.addr, one)
	c.login(testUser, testPassword)
	c.expect(221, "QUIT")

	// The success cleared the record: three more failures lock again
	// for a minute; one more after that, for two.
	for range lockAfter {
		ts.guessAndHangUp(t, one)
	}
	ts.waitLogCount(t, "peer=127.0.0.1 for=1m0s", 2)
	clock.advance(time.Minute)
	c = dialCtrlFrom(t, ts.addr, one)
	c.expect(331, "USER "+testUser)
	c.expect(530, "PASS still wrong")
	if code, msg := c.read(); code != 421 || !strings.Contains(msg, "try again in 2m0s") {
		t.Fatalf("after the fourth failure: %d %s", code, msg)
	}
}

// TestLoginOneCheckPerAddress: parallel sessions from one address cannot
// guess past the limit: their checks run one at a time, and those that
// come after the lock-out are refused without a check.
func TestLoginOneCheckPerAddress(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	ts := newTestServer(t, func(c *Config) { c.now = clock.now })
	const sessions = 8
	var conns []*ctrl
	for range sessions {
		c := dialCtrl(t, ts.addr)
		c.expect(331, "USER "+testUser)
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.send("PASS wrong")
	}
	for _, c := range conns {
		if code, msg := c.read(); code != 530 {
			t.Fatalf("PASS: %d %s", code, msg)
		}
	}
	if got := strings.Count(ts.logs.String(), `msg="failed login"`); got != lockAfter {
		t.Errorf("%d guesses checked from %d parallel sessions, want %d", got, sessions, lockAfter)
	}
}
