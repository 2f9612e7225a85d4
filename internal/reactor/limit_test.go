package reactor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// resetAfter sends msg on c and then resets the connection (SO_LINGER 0).
func resetAfter(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A waiting client that sent bytes and then reset leaves the queue (and
// frees its descriptor) as one that hung up silently does; one that sent
// bytes and half-closed stays and is answered.
func TestParkedClientResetLeavesQueue(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1 })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")

	half := tp.dial(t)
	half.Write([]byte("half-closed request"))
	half.(*net.TCPConn).CloseWrite()
	eventually(t, "the half-closed client queued", func() bool { return tp.Waiting() == 1 })
	for i := range 20 {
		c := tp.dial(t)
		eventually(t, "a client queued", func() bool { return tp.Waiting() == 2 })
		resetAfter(t, c, fmt.Sprintf("request %d", i))
		eventually(t, fmt.Sprintf("reset client %d to leave the queue", i), func() bool { return tp.Waiting() == 1 })
	}
	if n := tp.count("hung up"); n != 20 {
		t.Errorf("%d clients logged as hung up, want the 20 that reset:\n%s", n, tp.logs)
	}
	c1.Close()
	expectRead(t, half, "half-closed request")
	if n := tp.built.Load(); n != 2 {
		t.Errorf("%d connections served, want 2", n)
	}
}

// Without MaxWaiting the queue is bounded by what the descriptor limit
// leaves: at the bound the port stops accepting (clients wait in the
// listen queue, costing no descriptor) and says so once, then accepts
// again when a parked client gets its slot; nobody is closed unserved.
func TestQueueBoundFollowsFileLimit(t *testing.T) {
	const limit, bound = 1, 3
	tp := startPort(t, context.Background(), func(p *Port) {
		p.MaxConnections = limit
		p.files = func() uint64 { return FDReserve + limit + bound }
	})
	first := tp.dial(t)
	roundTrip(t, first, "first")
	var waiting []net.Conn
	for i := range bound + 3 {
		c := tp.dial(t)
		fmt.Fprintf(c, "client %d;", i)
		waiting = append(waiting, c)
	}
	eventually(t, "the queue to fill", func() bool { return tp.Waiting() == bound })
	eventually(t, "the queue-full line", func() bool { return tp.count("wait queue full (3 clients") == 1 })
	// The three beyond the bound are not accepted, so not queued either.
	time.Sleep(50 * time.Millisecond) // a negative: give a wrong accept its chance
	if n := tp.Waiting(); n != bound {
		t.Fatalf("%d clients queued, bound %d", n, bound)
	}
	first.Close()
	for i, c := range waiting {
		expectRead(t, c, fmt.Sprintf("client %d;", i))
		c.Close()
	}
	// The queue may drain and fill again as the last clients arrive: then
	// each spell says so once.
	eventually(t, "the end of the first spell", func() bool { return tp.count("wait queue drained; accepting without pause again") >= 1 })
	eventually(t, "the queue to drain", func() bool { return tp.Waiting() == 0 })
	if full, drained := tp.count("wait queue full"), tp.count("wait queue drained"); full < 1 || full > drained {
		t.Errorf("queue-full logged %d times over %d spells, want once per spell:\n%s", full, drained, tp.logs)
	}
}

// A port stopped while its accept loop waits for room returns, and serves
// the clients still in the listen queue as Stop always does.
func TestStopWhilePausedOnFullQueue(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) {
		p.MaxConnections = 1
		p.files = func() uint64 { return FDReserve + 2 }
	})
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	c2, c3 := tp.dial(t), tp.dial(t)
	c2.Write([]byte("two"))
	c3.Write([]byte("three"))
	eventually(t, "the queue-full line", func() bool { return tp.count("wait queue full") == 1 })
	stopped := tp.stopInBackground()
	c1.Close()
	expectRead(t, c2, "two")
	c2.Close()
	expectRead(t, c3, "three")
	c3.Close()
	waitStopped(t, stopped)
}

func TestWaitBound(t *testing.T) {
	for _, c := range []struct {
		maxWaiting, limit int
		files             uint64
		want              int
		fromFiles         bool
	}{
		{5, 10, 1024, 5, false},     // MaxWaiting wins
		{0, 0, 1024, 0, false},      // no connection limit, no queue
		{0, 100, 1024, 860, true},   // 1024 - 64 - 100
		{0, 100, 128, 1, true},      // nothing left: one at a time
		{0, 100, 0, 0, false},       // limit unknown
		{0, 100, 1 << 40, 0, false}, // no practical limit
	} {
		got, fromFiles := waitBound(c.maxWaiting, c.limit, c.files)
		if got != c.want || fromFiles != c.fromFiles {
			t.Errorf("waitBound(%d, %d, %d) = %d, %v; want %d, %v", c.maxWaiting, c.limit, c.files, got, fromFiles, c.want, c.fromFiles)
		}
	}
}

// inChild runs the calling test again in a child process and reports
// whether this is the child; the parent fails with the child's output if
// it failed. For tests that change process-wide state (the descriptor
// limit).
func inChild(t *testing.T) bool {
	t.Helper()
	const env = "REACTOR_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skipf("%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return false
}

// When accepting fails for lack of descriptors and then works again, one
// line says so, beside the failures' own lines.
func TestAcceptResumesAfterFdExhaustion(t *testing.T) {
	if !inChild(t) {
		return
	}
	setFileLimit(t, 256)
	tp := startPort(t, context.Background(), nil)
	// Take every descriptor left, then give one back for the client's
	// socket: the server's accept has none.
	var spare []*os.File
	defer func() {
		for _, f := range spare {
			f.Close()
		}
	}()
	for range 300 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		spare = append(spare, f)
	}
	spare[len(spare)-1].Close()
	spare = spare[:len(spare)-1]
	c, err := net.Dial("tcp", tp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	eventually(t, "an accept to fail", func() bool { return tp.count("too many open files; retrying") > 0 })
	for _, f := range spare[len(spare)-8:] {
		f.Close()
	}
	spare = spare[:len(spare)-8]
	roundTrip(t, c, "served")
	eventually(t, "the resumption line", func() bool { return tp.count("accepting again after") == 1 })
	if !strings.Contains(tp.logs.String(), "(last: too many open files)") {
		t.Errorf("the resumption line does not name the error:\n%s", tp.logs)
	}
}

// setFileLimit sets the soft descriptor limit (in a child: see inChild)
// and returns the limits as they were.
func setFileLimit(t *testing.T, soft uint64) syscall.Rlimit {
	t.Helper()
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Max < 2*soft {
		t.Skipf("skipped: hard descriptor limit %d", r.Max)
	}
	low := r
	low.Cur = soft
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	return r
}

// RaiseFileLimit lifts the soft limit to the hard one.
func TestRaiseFileLimit(t *testing.T) {
	if !inChild(t) {
		return
	}
	r := setFileLimit(t, 100)
	n, err := RaiseFileLimit()
	if err != nil || n != r.Max || fileLimit() != r.Max {
		t.Errorf("RaiseFileLimit() = %d, %v; limit now %d; want %d", n, err, fileLimit(), r.Max)
	}
}
