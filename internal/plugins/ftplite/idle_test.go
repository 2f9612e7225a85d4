package ftplite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/reactor"
)

// The idle timeout runs on the configured clock: a session quiet for the
// whole timeout is closed with 421, one that sent a command meanwhile is
// not, and no test waits the timeout out.
func TestIdleTimeoutOnFakeClock(t *testing.T) {
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	ts := newTestServer(t, func(c *Config) { c.IdleTimeout, c.Clock = time.Minute, clock })
	quiet := dialCtrl(t, ts.addr)
	busy := dialCtrl(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clock.WaitForTimers(ctx, 1); err != nil { // the server's idle sweep
		t.Fatal(err)
	}
	clock.Advance(40 * time.Second)
	busy.expect(200, "NOOP")
	clock.Advance(30 * time.Second) // quiet: 70 s; busy: 30 s since its NOOP
	if code, msg := quiet.read(); code != 421 || !strings.Contains(msg, "Timeout") {
		t.Fatalf("idle session got %d %s", code, msg)
	}
	busy.expect(200, "NOOP")
}

// Many idle sessions share one timer, the server's sweep, and all of them
// are closed between T and T+T/8 after their greeting.
func TestIdleSessionsShareOneTimer(t *testing.T) {
	const n = 200
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	ts := newTestServer(t, func(c *Config) {
		c.IdleTimeout, c.Clock, c.MaxClients, c.MaxPerIP = time.Minute, clock, 0, 0
	})
	sessions := make([]*ctrl, n)
	for i := range sessions {
		sessions[i] = dialCtrl(t, ts.addr)
	}
	got := len(clock.Pending())
	t.Logf("%d timers pending for %d idle sessions", got, n)
	if got > 2 {
		t.Fatalf("%d timers pending for %d idle sessions; want one sweep for the server", got, n)
	}
	clock.Advance(time.Minute - time.Second)
	clock.Advance(time.Minute/8 + time.Second)
	for i, c := range sessions {
		if code, msg := c.read(); code != 421 || !strings.Contains(msg, "Timeout") {
			t.Fatalf("idle session %d got %d %s", i, code, msg)
		}
	}
}
