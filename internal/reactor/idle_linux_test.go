package reactor

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// dormantCount is how many of the port's connections wait in its poller.
func (tp *testPort) dormantCount() int {
	tp.mu.Lock()
	pl := tp.cfg.pl
	tp.mu.Unlock()
	if pl == nil {
		return 0
	}
	return pl.pending()
}

// Idle connections wait in the poller: many of them hold no goroutine
// each, and every one wakes for its next message.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 300
	tp := startPort(t, context.Background(), nil)
	base := runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = tp.dial(t)
		roundTrip(t, conns[i], fmt.Sprintf("hello %d;", i))
	}
	eventually(t, "every connection dormant", func() bool { return tp.dormantCount() == n })
	// The dialled side holds no goroutine; a goroutine per server
	// connection would add n.
	if g := runtime.NumGoroutine(); g > base+n/10 {
		t.Fatalf("%d goroutines with %d idle connections (%d before): want no goroutine each", g, n, base)
	}
	for round := range 2 {
		for i, c := range conns {
			roundTrip(t, c, fmt.Sprintf("again %d %d;", round, i))
		}
	}
	eventually(t, "every connection dormant again", func() bool { return tp.dormantCount() == n })
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "every connection closed", func() bool { return tp.Connections() == 0 })
	if got := tp.dormantCount(); got != 0 {
		t.Fatalf("%d closed connections still armed", got)
	}
}

// handle is a protocol whose transport the test drives from outside a
// callback, as a fan-out or a timer would.
type handle struct {
	echo
	made    chan Transport
	stopped chan struct{}
	lost    atomic.Int32
}

func newHandle() *handle {
	return &handle{made: make(chan Transport, 1), stopped: make(chan struct{}, 1)}
}

func (h *handle) ConnectionMade(t Transport) { h.echo.t = t; h.made <- t }
func (h *handle) StopRequested()             { h.stopped <- struct{}{}; h.t.LoseConnection() }
func (h *handle) ConnectionLost(error)       { h.lost.Add(1) }

// dormantHandle serves one connection of h, round-trips once and waits
// until it is dormant.
func dormantHandle(t *testing.T, setup func(*Port)) (*testPort, *handle, Transport, net.Conn) {
	t.Helper()
	h := newHandle()
	tp := startPortWith(t, context.Background(), func() Protocol { return h }, setup)
	c := tp.dial(t)
	tr := <-h.made
	roundTrip(t, c, "ping;")
	eventually(t, "connection dormant", func() bool { return tp.dormantCount() == 1 })
	return tp, h, tr, c
}

// Pausing a dormant connection holds its input back until it resumes.
func TestDormantConnectionPauseResume(t *testing.T) {
	_, _, tr, c := dormantHandle(t, nil)
	tr.PauseProducing()
	c.Write([]byte("held;"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if b, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("paused connection echoed %d bytes", b)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	tr.ResumeProducing()
	expectRead(t, c, "held;")
	roundTrip(t, c, "after;")
}

// A stop request reaches a dormant connection: StopRequested runs, the
// session closes and Stop returns without the grace period running out.
func TestDormantConnectionStopRequest(t *testing.T) {
	tp, h, _, c := dormantHandle(t, nil)
	stopped := tp.stopInBackground()
	select {
	case <-h.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("StopRequested never ran on a dormant connection")
	}
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Fatalf("read %q, %v; want a clean close", b, err)
	}
	waitStopped(t, stopped)
	if tp.count("aborted") > 0 {
		t.Fatalf("stop needed the grace period's end:\n%s", tp.logs)
	}
	if n := h.lost.Load(); n != 1 {
		t.Fatalf("ConnectionLost ran %d times", n)
	}
}

// Writes, LoseConnection and AbortConnection from outside a callback reach
// a dormant connection; ConnectionLost runs once.
func TestDormantConnectionWriteAndClose(t *testing.T) {
	for _, abort := range []bool{false, true} {
		tp, h, tr, c := dormantHandle(t, nil)
		if !abort {
			tr.Write([]byte("pushed;"))
			expectRead(t, c, "pushed;")
			tr.LoseConnection()
			if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
				t.Fatalf("LoseConnection: read %q, %v; want a clean close", b, err)
			}
		} else {
			tr.AbortConnection()
			if _, err := io.ReadAll(c); err == nil {
				t.Fatal("AbortConnection: clean close; want a reset")
			}
		}
		eventually(t, "connection ended", func() bool { return tp.Connections() == 0 })
		if n := h.lost.Load(); n != 1 {
			t.Fatalf("abort %v: ConnectionLost ran %d times", abort, n)
		}
		if tp.dormantCount() != 0 {
			t.Fatalf("abort %v: still armed after close", abort)
		}
	}
}

// An idle timeout closes a dormant connection.
func TestDormantConnectionIdleTimeout(t *testing.T) {
	clock := NewFakeClock(time.Unix(1000, 0))
	tp, h, _, c := dormantHandle(t, func(p *Port) { p.IdleTimeout = time.Minute; p.Clock = clock })
	clock.Advance(2 * time.Minute)
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Fatalf("read %q, %v; want a clean close", b, err)
	}
	eventually(t, "connection ended", func() bool { return tp.Connections() == 0 })
	if n := h.lost.Load(); n != 1 {
		t.Fatalf("ConnectionLost ran %d times", n)
	}
}

// With ReaderPerConnection every connection keeps its goroutine, the way
// before the poller.
func TestReaderPerConnection(t *testing.T) {
	tp := startPort(t, context.Background(), func(p *Port) { p.ReaderPerConnection = true })
	c := tp.dial(t)
	roundTrip(t, c, "ping;")
	if tp.cfg.pl != nil || tp.dormantCount() != 0 {
		t.Fatal("a poller despite ReaderPerConnection")
	}
}

// A write from outside a callback (a broadcast) starts the connection's
// writer; once the queue stayed empty for a sweep interval the writer ends
// and the queue goes with it, so the idle connection again holds neither.
func TestIdleWriterRetires(t *testing.T) {
	const n = 50
	built := make(chan *handle, n)
	tp := startPortWith(t, context.Background(), func() Protocol { h := newHandle(); built <- h; return h }, nil)
	conns := make([]net.Conn, n)
	trs := make([]Transport, n)
	for k := range conns {
		conns[k] = tp.dial(t)
		trs[k] = <-(<-built).made
		roundTrip(t, conns[k], "ping;")
	}
	eventually(t, "every connection dormant", func() bool { return tp.dormantCount() == n })
	base := runtime.NumGoroutine()
	for k, tr := range trs {
		tr.Write([]byte("news;"))
		expectRead(t, conns[k], "news;")
	}
	queues := func() (held int) {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for c := range tp.conns {
			c.wmu.Lock()
			if c.out != nil {
				held++
			}
			c.wmu.Unlock()
		}
		return held
	}
	if q := queues(); q != n {
		t.Fatalf("%d of %d connections hold a queue right after the writes; the test no longer starts writers", q, n)
	}
	eventually(t, "every writer retired", func() bool { return queues() == 0 && runtime.NumGoroutine() <= base })
	// The next write starts a writer again and arrives.
	trs[0].Write([]byte("later;"))
	expectRead(t, conns[0], "later;")
	roundTrip(t, conns[1], "still;")
}

// gate echoes, holding its first callback until released, so the test can
// send more while the connection is about to go dormant.
type gate struct {
	t        Transport
	held     bool
	first    chan struct{}
	released chan struct{}
}

func (g *gate) ConnectionMade(t Transport) { g.t = t }
func (g *gate) ConnectionLost(error)       {}
func (g *gate) DataReceived(b []byte) {
	g.t.Write(b)
	if !g.held {
		g.held = true
		close(g.first)
		<-g.released
	}
}

// A read that emptied the socket sends the connection dormant without a
// second read; bytes that arrived while its callback ran still wake it.
func TestBytesDuringTheLastCallbackWake(t *testing.T) {
	g := &gate{first: make(chan struct{}), released: make(chan struct{})}
	tp := startPortWith(t, context.Background(), func() Protocol { return g }, nil)
	// Past two sweeps, so the new connection reads without waiting and
	// goes dormant as soon as its socket is empty.
	time.Sleep(3 * quietTick)
	c := tp.dial(t)
	c.Write([]byte("a;"))
	<-g.first
	c.Write([]byte("b;"))
	time.Sleep(50 * time.Millisecond) // let "b;" reach the server's socket
	close(g.released)
	expectRead(t, c, "a;b;")
	eventually(t, "connection dormant", func() bool { return tp.dormantCount() == 1 })
}
