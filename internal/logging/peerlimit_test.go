package logging

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// limiterClock is a hand-moved clock for a PeerLimiter.
type limiterClock struct{ t time.Time }

func (c *limiterClock) now() time.Time { return c.t }

// newTestLimiter returns a limiter of 3 lines per 10 s and the logger its
// callers warn on, both writing to buf.
func newTestLimiter() (*PeerLimiter, *slog.Logger, *bytes.Buffer, *limiterClock) {
	buf := &bytes.Buffer{}
	clock := &limiterClock{t: time.Unix(1_000_000, 0)}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	return NewPeerLimiter(log, 3, 10*time.Second, clock.now), log, buf, clock
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func lines(buf *bytes.Buffer) []string {
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

func TestPeerLimiterBurstThenSummary(t *testing.T) {
	l, log, buf, clock := newTestLimiter()
	logged := 0
	for i := range 1000 {
		if l.Warn(log, "10.0.0.1", "bad frame", "n", i) {
			logged++
		}
	}
	// Another peer is not held back by the first one.
	if !l.Warn(log, "10.0.0.2", "bad frame", "n", 0) {
		t.Fatal("a second peer's first warning was suppressed")
	}
	if logged != 3 || len(lines(buf)) != 4 {
		t.Fatalf("%d warnings logged, log:\n%s", logged, buf)
	}
	// Within the interval nothing more is written, not even by Flush.
	clock.t = clock.t.Add(9 * time.Second)
	l.Flush(false)
	l.Warn(log, "10.0.0.1", "bad frame")
	if n := len(lines(buf)); n != 4 {
		t.Fatalf("%d lines before the interval ended:\n%s", n, buf)
	}
	// The next interval starts with the count of the last, then the burst
	// again.
	clock.t = clock.t.Add(time.Second)
	if !l.Warn(log, "10.0.0.1", "bad frame", "n", "again") {
		t.Fatal("first warning of a new interval suppressed")
	}
	got := lines(buf)
	if len(got) != 6 || !strings.Contains(got[4], "suppressed 998 similar lines from 10.0.0.1") || !strings.Contains(got[5], "n=again") {
		t.Fatalf("log after the interval:\n%s", buf)
	}
}

func TestPeerLimiterFlush(t *testing.T) {
	l, log, buf, clock := newTestLimiter()
	for range 5 {
		l.Warn(log, "quiet", "x")
		l.Warn(log, "busy", "x")
	}
	// Peers that went quiet are reported by Flush once their interval is
	// over.
	clock.t = clock.t.Add(10 * time.Second)
	buf.Reset()
	l.Flush(false)
	if s := buf.String(); !strings.Contains(s, "suppressed 2 similar lines from quiet") || !strings.Contains(s, "suppressed 2 similar lines from busy") {
		t.Fatalf("Flush(false) after the interval:\n%s", s)
	}
	// An interval still running is reported only by Flush(true), once.
	for range 4 {
		l.Warn(log, "busy", "x")
	}
	clock.t = clock.t.Add(5 * time.Second)
	buf.Reset()
	l.Flush(false)
	if buf.Len() != 0 {
		t.Fatalf("Flush(false) within the interval wrote:\n%s", buf)
	}
	l.Flush(true)
	if s := buf.String(); s == "" || !strings.Contains(s, "suppressed 1 similar lines from busy") || strings.Contains(s, "quiet") {
		t.Fatalf("Flush(true):\n%s", s)
	}
	buf.Reset()
	l.Flush(true)
	if buf.Len() != 0 {
		t.Fatalf("a second Flush wrote:\n%s", buf)
	}
}

// TestPeerLimiterBoundsPeers: warnings from more peers than it tracks
// share one count instead of growing the table.
func TestPeerLimiterBoundsPeers(t *testing.T) {
	l, log, buf, _ := newTestLimiter()
	for i := range maxPeers + 100 {
		l.Warn(log, fmt.Sprint("peer", i), "x")
	}
	if len(l.peers) != maxPeers+1 {
		t.Fatalf("%d peers tracked", len(l.peers))
	}
	l.Flush(true)
	if !strings.Contains(buf.String(), "suppressed 100 similar lines from other peers") {
		t.Fatal("no summary for the peers beyond the table")
	}
}

func TestPeerKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, "127.0.0.1"},
		{&net.UDPAddr{IP: net.IPv6loopback, Port: 7}, "::1"},
		{&net.UnixAddr{Name: "/run/chat.sock", Net: "unix"}, "/run/chat.sock"},
		{nil, ""},
	} {
		if got := PeerKey(tc.addr); got != tc.want {
			t.Errorf("PeerKey(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
