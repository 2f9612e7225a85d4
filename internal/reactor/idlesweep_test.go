package reactor

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
	"unsafe"
)

// Thousands of idle connections on a port with an idle timeout cost one
// timer between them, not one each; the sweep closes every silent one
// between T and T+T/8 and spares the one that keeps talking.
func TestIdleTimeoutOneSweep(t *testing.T) {
	const n = 2000
	const timeout = time.Minute
	clock := NewFakeClock(epoch)
	tp := startPort(t, context.Background(), func(p *Port) { p.IdleTimeout = timeout; p.Clock = clock })
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = tp.dial(t)
		t.Cleanup(func() { conns[i].Close() })
		roundTrip(t, conns[i], "x")
	}
	got := len(clock.Pending())
	t.Logf("%d timers pending for %d idle connections", got, n)
	if got > 2 {
		t.Fatalf("%d timers pending for %d idle connections; want one sweep for the port", got, n)
	}
	busy := conns[0]
	step := timeout / 16
	for elapsed := step; elapsed < timeout; elapsed += step {
		clock.Advance(step)
		roundTrip(t, busy, "b")
	}
	// The sweep runs inside Advance, so its log lines are written by now.
	if got := tp.count("closing idle connection"); got != 0 {
		t.Fatalf("%d connections closed before a whole timeout of silence", got)
	}
	clock.Advance(timeout/8 + step)
	if got := tp.count("no traffic for 1m0s: closing idle connection"); got != n-1 {
		t.Fatalf("%d idle connections closed by T+T/8; want %d", got, n-1)
	}
	for _, c := range conns[1:] {
		if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
			t.Fatalf("idle connection: read %q, %v; want a clean close", b, err)
		}
	}
	roundTrip(t, busy, "still here")
	eventually(t, "only the busy connection left", func() bool { return tp.Connections() == 1 })
	if got := len(clock.Pending()); got > 2 {
		t.Fatalf("%d timers pending for one connection", got)
	}
}

// conn is what every idle connection costs; 240 bytes is a size class,
// and the idle timeout's state must not push it into the next (256).
func TestConnSize(t *testing.T) {
	s := unsafe.Sizeof(conn{})
	t.Logf("conn is %d bytes", s)
	if s > 240 {
		t.Fatalf("conn is %d bytes; want at most 240", s)
	}
}
