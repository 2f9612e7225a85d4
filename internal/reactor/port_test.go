package reactor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// echo writes back what it receives; a message containing PANIC makes it
// panic instead.
type echo struct{ t Transport }

func (e *echo) ConnectionMade(t Transport) { e.t = t }
func (e *echo) DataReceived(p []byte) {
	if bytes.Contains(p, []byte("PANIC")) {
		panic("told to panic")
	}
	e.t.Write(p)
}
func (e *echo) ConnectionLost(error) {}

// testPort is a started Port on 127.0.0.1 whose log lines are kept.
type testPort struct {
	*Port
	logs  *testutil.Buffer
	built atomic.Int32 // protocols built, i.e. connections served
}

// startPort starts an echo Port; setup, if given, runs before Start.
func startPort(t *testing.T, ctx context.Context, setup func(*Port)) *testPort {
	t.Helper()
	return startPortWith(t, ctx, func() Protocol { return &echo{} }, setup)
}

// startPortWith starts a Port serving the protocols build makes.
func startPortWith(t *testing.T, ctx context.Context, build func() Protocol, setup func(*Port)) *testPort {
	t.Helper()
	tp := &testPort{logs: &testutil.Buffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(tp.logs, t.Output()), nil))
	tp.Port = NewPort("test", Endpoint{Kind: "tcp", Interface: "127.0.0.1"}, FactoryFunc(func(net.Addr) Protocol {
		tp.built.Add(1)
		return build()
	}), log)
	if setup != nil {
		setup(tp.Port)
	}
	if err := tp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tp.Stop(ctx)
	})
	return tp
}

func (tp *testPort) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second)) // no test hangs on a read
	t.Cleanup(func() { c.Close() })
	return c
}

func (tp *testPort) count(s string) int { return strings.Count(tp.logs.String(), s) }

// stopInBackground starts a graceful Stop with 10 s of grace; the channel
// closes when Stop returns.
func (tp *testPort) stopInBackground() <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tp.Stop(ctx)
	}()
	return stopped
}

// waitStopped fails the test unless stopped closes within 10 s.
func waitStopped(t *testing.T, stopped <-chan struct{}) {
	t.Helper()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
}

// eventually polls cond (bounded) for states only visible through the
// server's counters.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	expectRead(t, c, msg)
}

func expectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
}

func TestLimitQueuesClientsInOrder(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 2 })
	c1, c2 := tp.dial(t), tp.dial(t)
	roundTrip(t, c1, "one")
	roundTrip(t, c2, "two")

	// Three more clients: each sends before being served; c5 hangs up
	// while waiting.
	c3 := tp.dial(t)
	c3.Write([]byte("early three;"))
	eventually(t, "c3 queued", func() bool { return tp.Waiting() == 1 })
	c5 := tp.dial(t)
	eventually(t, "c5 queued", func() bool { return tp.Waiting() == 2 })
	c4 := tp.dial(t)
	c4.Write([]byte("early four;"))
	eventually(t, "c4 queued", func() bool { return tp.Waiting() == 3 })
	c5.Close()
	eventually(t, "c5 to leave the queue", func() bool { return tp.Waiting() == 2 })
	if n := tp.built.Load(); n != 2 {
		t.Fatalf("%d connections served, want 2 while the others wait", n)
	}
	c3.Write([]byte("more three"))

	c1.Close()
	expectRead(t, c3, "early three;more three") // nothing sent while waiting is lost
	if n := tp.built.Load(); n != 3 {
		t.Fatalf("%d connections served after one slot freed, want 3 (c4 still waits)", n)
	}
	roundTrip(t, c3, "!")
	c2.Close()
	expectRead(t, c4, "early four;")
	roundTrip(t, c4, "!")
	if n := tp.built.Load(); n != 4 {
		t.Fatalf("%d connections served, want 4 (the hung-up client skipped)", n)
	}
	eventually(t, "queue drained log", func() bool { return tp.count("wait queue drained") == 1 })
	if n := tp.count("connection limit of 2 reached"); n != 1 {
		t.Fatalf("limit-reached logged %d times, want once:\n%s", n, tp.logs)
	}
	if n := tp.count("hung up"); n != 1 {
		t.Fatalf("hung-up client logged %d times, want once:\n%s", n, tp.logs)
	}

	// A second episode logs the state change again, once.
	c6 := tp.dial(t)
	eventually(t, "c6 queued", func() bool { return tp.Waiting() == 1 })
	c3.Close()
	roundTrip(t, c6, "six")
	eventually(t, "second drained log", func() bool { return tp.count("wait queue drained") == 2 })
	if n := tp.count("connection limit of 2 reached"); n != 2 {
		t.Fatalf("limit-reached logged %d times over two episodes, want 2", n)
	}
}

func TestLimitQueueBound(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1; p.MaxWaiting = 1 })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	c2 := tp.dial(t)
	eventually(t, "c2 queued", func() bool { return tp.Waiting() == 1 })
	c3 := tp.dial(t)
	if n, err := c3.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("client beyond the queue bound: read %d, %v; want it closed", n, err)
	}
	if n := tp.count("wait queue full (1 clients): closing new client"); n != 1 {
		t.Fatalf("queue-full logged %d times:\n%s", n, tp.logs)
	}
	c1.Close()
	roundTrip(t, c2, "two")
}

// During Stop, clients waiting for a slot keep their place and are served
// as the connections in flight finish.
func TestStopServesWaitingClients(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1 })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	c2 := tp.dial(t)
	c2.Write([]byte("early two;"))
	eventually(t, "c2 queued", func() bool { return tp.Waiting() == 1 })
	c3 := tp.dial(t)
	eventually(t, "c3 queued", func() bool { return tp.Waiting() == 2 })
	stopped := tp.stopInBackground()
	eventually(t, "the stop to begin", func() bool {
		return tp.count("2 client(s) waiting for a slot will be served as connections finish") == 1
	})
	roundTrip(t, c1, "still served")
	c1.Close()
	expectRead(t, c2, "early two;")
	roundTrip(t, c2, "two")
	c2.Close()
	roundTrip(t, c3, "three")
	c3.Close()
	waitStopped(t, stopped)
	if n := tp.built.Load(); n != 3 || tp.count("never served") != 0 {
		t.Fatalf("built %d, want 3, none closed unserved; logs:\n%s", n, tp.logs)
	}
}

// Clients still waiting when the grace period ends are closed unserved.
func TestStopClosesWaitingClients(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1 })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	c2 := tp.dial(t)
	eventually(t, "c2 queued", func() bool { return tp.Waiting() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tp.Stop(ctx)
	if n, err := c2.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("waiting client after Stop: read %d, %v", n, err)
	}
	if tp.built.Load() != 1 || tp.count("grace period over: closed 1 waiting client(s) never served") != 1 {
		t.Fatalf("built %d; logs:\n%s", tp.built.Load(), tp.logs)
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	tp := startPort(t, context.Background(), nil)
	others := make([]net.Conn, 100)
	for i := range others {
		others[i] = tp.dial(t)
		roundTrip(t, others[i], "hello")
	}
	bad := tp.dial(t)
	bad.Write([]byte("PANIC"))
	if n, err := bad.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("panicking connection: read %d, %v; want it closed", n, err)
	}
	for i, c := range others {
		roundTrip(t, c, strings.Repeat("x", i+1))
	}
	if n := tp.count("panic in protocol: told to panic"); n != 1 {
		t.Fatalf("panic logged %d times:\n%s", n, tp.logs)
	}
	eventually(t, "the panicked connection to be forgotten", func() bool { return tp.Connections() == 100 })
}

// The idle timeout closes the connection that went quiet, not the one that
// keeps talking; the fake clock stands in for the wait.
func TestIdleTimeout(t *testing.T) {
	clock := NewFakeClock(epoch)
	tp := startPort(t, context.Background(), func(p *Port) { p.IdleTimeout = time.Minute; p.Clock = clock })
	quiet, busy := tp.dial(t), tp.dial(t)
	roundTrip(t, quiet, "q")
	roundTrip(t, busy, "b")
	if err := clock.WaitForTimers(waitCtx(t), 1); err != nil { // the port's idle sweep
		t.Fatal(err)
	}
	clock.Advance(40 * time.Second)
	roundTrip(t, busy, "still here")
	clock.Advance(40 * time.Second) // quiet: 80 s idle; busy: 40 s
	if n, err := quiet.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want a clean EOF", n, err)
	}
	roundTrip(t, busy, "ok")
	if n := tp.count("no traffic for 1m0s: closing idle connection"); n != 1 {
		t.Fatalf("idle close logged %d times:\n%s", n, tp.logs)
	}
}

// A client that sends without reading: the echo blocks in Write, the
// server stops reading from it, the write deadline closes it; a reading
// client on the same port is unaffected.
func TestWriteTimeoutClosesNonReader(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.WriteTimeout = 300 * time.Millisecond })
	reader, stuck := tp.dial(t), tp.dial(t)
	chunk := make([]byte, 64<<10)
	var sent int64
	for {
		stuck.SetWriteDeadline(time.Now().Add(2 * time.Second))
		n, err := stuck.Write(chunk)
		sent += int64(n)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) && !isReset(err) {
				t.Fatalf("non-reading client write: %v", err)
			}
			break
		}
		if sent > 256<<20 {
			t.Fatal("server kept reading 256 MiB from a client that reads nothing")
		}
	}
	eventually(t, "write-timeout log", func() bool { return tp.count("peer read nothing for 300ms: closing") == 1 })
	roundTrip(t, reader, "fine")
	eventually(t, "one connection left", func() bool { return tp.Connections() == 1 })
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// heapBound is what a non-reading client may add to the server's live heap:
// the connection's read buffer (16 KiB), its structs and slack for the
// runtime; the bytes it sends stay in kernel buffers.
const heapBound = 256 << 10

func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A client that sends without reading cannot grow the server's memory: the
// echo blocks in Write, so the connection stops reading until its output
// drains, and the rest waits in kernel buffers.
func TestNonReaderHeapBounded(t *testing.T) {
	tp := startPort(t, context.Background(), nil)
	chunk := make([]byte, 64<<10)
	before := liveHeap()
	stuck := tp.dial(t)
	roundTrip(t, stuck, "hi")
	var sent int64
	for sent < 256<<20 {
		stuck.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := stuck.Write(chunk)
		sent += int64(n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break // the server stopped reading: everything is full
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if sent >= 256<<20 {
		t.Fatal("server kept reading 256 MiB from a client that reads nothing")
	}
	after := liveHeap()
	growth := int64(after) - int64(before)
	t.Logf("client sent %d KiB without reading; server live heap %d -> %d bytes (growth %d, bound %d)", sent>>10, before, after, growth, heapBound)
	if growth > heapBound {
		t.Fatalf("live heap grew by %d bytes, over the %d bound", growth, heapBound)
	}
}

// gatedListener holds Accept back until Stop has set its deadline (or
// closed it), so clients pile up in the kernel's accept queue first.
type gatedListener struct {
	net.Listener
	gate chan struct{}
	once atomic.Bool
}

func (g *gatedListener) open() {
	if g.once.CompareAndSwap(false, true) {
		close(g.gate)
	}
}

func (g *gatedListener) Accept() (net.Conn, error) {
	<-g.gate
	return g.Listener.Accept()
}

func (g *gatedListener) SetDeadline(t time.Time) error {
	defer g.open()
	return g.Listener.(*net.TCPListener).SetDeadline(t)
}

func (g *gatedListener) SyscallConn() (syscall.RawConn, error) {
	return g.Listener.(*net.TCPListener).SyscallConn()
}

func (g *gatedListener) Close() error {
	defer g.open()
	return g.Listener.Close()
}

// greeter sends a line and closes, like fastpoetry.
type greeter struct{}

func (greeter) ConnectionMade(t Transport) { t.Write([]byte("hello\n")); t.LoseConnection() }
func (greeter) DataReceived([]byte)        {}
func (greeter) ConnectionLost(error)       {}

// Clients the kernel accepted before Stop, still in the listen queue, are
// served: closing the listener under them would reset them.
func TestStopServesAcceptQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := startPortWith(t, context.Background(), func() Protocol { return greeter{} }, func(p *Port) {
		p.ln = &gatedListener{Listener: ln, gate: make(chan struct{})}
	})
	const n = 5
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = tp.dial(t)
	}
	waitStopped(t, tp.stopInBackground())
	for i, c := range clients {
		if got, err := io.ReadAll(c); string(got) != "hello\n" || err != nil {
			t.Errorf("client %d: got %q, %v", i, got, err)
		}
	}
	if got := tp.count("connection closed"); got != n {
		t.Errorf("%d connections served, want %d", got, n)
	}
	// The listener is closed: nobody else gets in.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("listener still accepting after Stop")
	}
}

// addrConn is a net.Conn that only knows its peer's address.
type addrConn struct {
	net.Conn
	peer net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.peer }

func TestPeerNameMatchesAddrString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10000}, // 16-byte form
		&net.TCPAddr{IP: net.IP{127, 0, 0, 2}, Port: 1},
		&net.TCPAddr{IP: net.IPv6loopback, Port: 65535},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 21, Zone: "lo"},
		&net.UnixAddr{Name: "/run/poetry.sock", Net: "unix"},
	} {
		if got, want := peerName(addrConn{peer: a}), a.String(); got != want {
			t.Errorf("peerName(%#v) = %q, want %q", a, got, want)
		}
	}
	for _, a := range []net.Addr{&net.UnixAddr{Net: "unix"}, &net.UnixAddr{Name: "@", Net: "unix"}, nil} {
		if got := peerName(addrConn{peer: a}); got != "unix" {
			t.Errorf("peerName(%v) = %q, want unix", a, got)
		}
	}
}

// replier sends reply once told to, then loses the connection.
type replier struct {
	reply []byte
	start <-chan struct{}
}

func (r *replier) ConnectionMade(t Transport) {
	<-r.start
	if _, err := t.Write(r.reply); err == nil {
		t.LoseConnection()
	}
}
func (r *replier) DataReceived([]byte)  {}
func (r *replier) ConnectionLost(error) {}

// LoseConnection ends with a clean EOF whether or not the client sent
// something the protocol never read: unread input would make a plain close
// a reset, which can cost the client the end of the reply.
func TestLoseConnectionEndsWithEOF(t *testing.T) {
	reply := bytes.Repeat([]byte("Whose woods these are I think I know.\n"), 16)
	for _, sendFirst := range []bool{false, true} {
		told := make(chan struct{})
		tp := startPortWith(t, context.Background(), func() Protocol { return &replier{reply: reply, start: told} }, nil)
		c := tp.dial(t)
		if sendFirst {
			// On loopback the bytes are in the server's receive queue once
			// Write returns, before the protocol replies.
			if _, err := c.Write([]byte("a request the protocol never reads\n")); err != nil {
				t.Fatal(err)
			}
		}
		close(told)
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, reply) {
			t.Errorf("client sent first: %v: read %d of %d bytes, then %v; want all, then EOF", sendFirst, len(got), len(reply), err)
		}
	}
}

// stoppingEcho is echo that ends its session when the server stops.
type stoppingEcho struct{ echo }

func (e *stoppingEcho) StopRequested() { e.t.LoseConnection() }

// What a client sent before the stop request is delivered before
// StopRequested: a client served during shutdown has the request it sent
// while waiting answered, then the connection ends; more bytes sent after
// that do not hold the stop off.
func TestStopRequestAfterPendingInput(t *testing.T) {
	tp := startPortWith(t, context.Background(), func() Protocol { return &stoppingEcho{} }, func(p *Port) { p.MaxConnections = 1 })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	c2 := tp.dial(t)
	c2.Write([]byte("sent while waiting;"))
	eventually(t, "c2 queued", func() bool { return tp.Waiting() == 1 })
	stopped := tp.stopInBackground()
	if b, err := io.ReadAll(c1); len(b) != 0 || err != nil {
		t.Fatalf("idle session at stop: read %q, %v; want a clean close", b, err)
	}
	expectRead(t, c2, "sent while waiting;")
	// Keep sending: the session must end anyway.
	go func() {
		for i := 0; i < 10000; i++ {
			if _, err := c2.Write([]byte("more;")); err != nil {
				return
			}
		}
	}()
	waitStopped(t, stopped)
	if tp.count("aborted") > 0 || tp.count("never served") > 0 {
		t.Fatalf("stop needed the grace period's end:\n%s", tp.logs)
	}
}
