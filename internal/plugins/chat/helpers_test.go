package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/testutil"
)

const wait = 5 * time.Second

// logBuf collects the server's log for assertions.
type logBuf struct{ testutil.Buffer }

// waitLog waits, bounded, for s in the log.
func (l *logBuf) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startServer runs a chat server on 127.0.0.1:0 in this process and stops
// it at cleanup.
func startServer(t *testing.T, cfg Config) (*Server, string, *logBuf) {
	t.Helper()
	return startServerClock(t, cfg, nil)
}

func startServerClock(t *testing.T, cfg Config, clock reactor.Clock) (*Server, string, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), nil))
	srv := New("chat", reactor.Endpoint{Kind: "tcp", Interface: "127.0.0.1"}, cfg, clock, log)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		srv.Stop(ctx)
	})
	return srv, srv.Port.Addr().String(), logs
}

// testWriter shows the server log with -v only.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// client is a raw test client: it speaks frames on a socket and checks
// every reply it waits for.
type client struct {
	t       *testing.T
	c       net.Conn
	dec     wire.Decoder
	pending []wire.Frame
	buf     []byte
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, buf: make([]byte, 64<<10)}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(version, cmd uint32, body string) {
	c.t.Helper()
	c.write(wire.AppendFrame(nil, version, cmd, []byte(body)))
}

// next returns the next frame, failing after the wait or on close.
func (c *client) next() wire.Frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}

func (c *client) read() (wire.Frame, error) {
	c.c.SetReadDeadline(time.Now().Add(wait))
	for len(c.pending) == 0 {
		n, err := c.c.Read(c.buf)
		if ferr := c.dec.Feed(c.buf[:n], func(f wire.Frame) bool {
			f.Body = append([]byte(nil), f.Body...)
			c.pending = append(c.pending, f)
			return true
		}); ferr != nil {
			return wire.Frame{}, ferr
		}
		if err != nil && len(c.pending) == 0 {
			return wire.Frame{}, err
		}
	}
	f := c.pending[0]
	c.pending = c.pending[1:]
	return f, nil
}

// expect reads the next frame, checks its command and version, and
// decodes its body into a map.
func (c *client) expect(version, cmd uint32) map[string]any {
	c.t.Helper()
	f := c.next()
	if f.Command != cmd || f.Version != version {
		c.t.Fatalf("got command %d version %d body %s; want command %d version %d", f.Command, f.Version, f.Body, cmd, version)
	}
	var m map[string]any
	if err := json.Unmarshal(f.Body, &m); err != nil {
		c.t.Fatalf("reply body %q: %v", f.Body, err)
	}
	return m
}

// expectError reads a 199 and checks its code.
func (c *client) expectError(version uint32, code int) map[string]any {
	c.t.Helper()
	m := c.expect(version, wire.CmdError)
	if m["code"] != float64(code) {
		c.t.Fatalf("error reply %v; want code %d", m, code)
	}
	return m
}

// expectClosed reads until the server closes, failing on any frame.
func (c *client) expectClosed() {
	c.t.Helper()
	f, err := c.read()
	if err == nil {
		c.t.Fatalf("got command %d %s; want the connection closed", f.Command, f.Body)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatal("connection still open")
	}
}

func (c *client) login(id string) {
	c.t.Helper()
	c.send(1, wire.CmdVerify, `{"phone_number":`+id+`}`)
	if m := c.expect(1, wire.CmdVerifyResult); m["code"] != float64(1) {
		c.t.Fatalf("verify reply %v", m)
	}
}

func (c *client) heartbeat() {
	c.t.Helper()
	c.send(1, wire.CmdHeartbeat, "")
}

// sync proves the server has processed everything sent so far and that
// nothing else was queued for this client: an unknown command's error
// reply must be the next frame.
func (c *client) sync() {
	c.t.Helper()
	c.send(9, 999, "")
	c.expectError(9, wire.CodeUnknownCmd)
}

func loggedIn(t *testing.T, addr string, ids ...string) []*client {
	t.Helper()
	cs := make([]*client, len(ids))
	for i, id := range ids {
		cs[i] = dial(t, addr)
		cs[i].login(id)
	}
	return cs
}

// waitFor polls cond, bounded, for state with no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
