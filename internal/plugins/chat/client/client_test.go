package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/testutil"
)

const wait = 5 * time.Second

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// server runs a chat server on port (0 = any) until cleanup or stop.
func server(t *testing.T, port int) (addr string, stop func()) {
	t.Helper()
	srv := chat.New("chat", reactor.Endpoint{Kind: "tcp", Port: port, Interface: "127.0.0.1"}, chat.DefaultConfig(), nil, quiet())
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		c, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		srv.Stop(c)
	}
	t.Cleanup(stop)
	return srv.Port.Addr().String(), stop
}

func start(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.Network == "" {
		cfg.Network = "tcp"
	}
	cfg.Log = quiet()
	c, err := New("client "+cfg.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c2, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c.Stop(c2)
	})
	return c
}

func expect(t *testing.T, c *Client, cmd uint32, from, content string) {
	t.Helper()
	select {
	case m := <-c.Messages():
		var d struct {
			From    json.RawMessage `json:"chat_from"`
			Content string          `json:"chat_content"`
		}
		if err := json.Unmarshal(m.Body, &d); err != nil || m.Command != cmd || string(d.From) != from || d.Content != content {
			t.Fatalf("got %d %s; want %d from %s: %q", m.Command, m.Body, cmd, from, content)
		}
	case <-time.After(wait):
		t.Fatalf("no message %q", content)
	}
}

func TestClientChats(t *testing.T) {
	addr, _ := server(t, 0)
	a := start(t, Config{Address: addr, ID: `"alice"`})
	b := start(t, Config{Address: addr, ID: `42`, Version: 3})
	for _, c := range []*Client{a, b} {
		if err := c.LoggedIn(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Single(ctx(t), `42`, "hello"); err != nil {
		t.Fatal(err)
	}
	expect(t, b, wire.CmdSingleMsg, `"alice"`, "hello")
	if err := b.Group(ctx(t), []string{`"alice"`}, "grp"); err != nil {
		t.Fatal(err)
	}
	expect(t, a, wire.CmdGroupMsg, `42`, "grp")
	if err := a.Broadcast(ctx(t), "all"); err != nil {
		t.Fatal(err)
	}
	expect(t, b, wire.CmdBroadcastMsg, `"alice"`, "all")
	if err := a.Single(ctx(t), `"nobody"`, "x"); err != nil {
		t.Fatal(err)
	}
	m := <-a.Messages()
	if m.Command != wire.CmdError || m.Version != 1 {
		t.Fatalf("offline recipient: %d %s", m.Command, m.Body)
	}
}

func TestClientReconnectsAndLogsInAgain(t *testing.T) {
	port := testutil.FreePort(t)
	addr, stop := server(t, port)
	fast := reactor.BackoffPolicy(10*time.Millisecond, 2, 100*time.Millisecond, nil)
	a := start(t, Config{Address: addr, ID: `"a"`, Policy: fast})
	if err := a.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	stop()
	// A new server on the same port: the client comes back and logs in
	// again without being told.
	addr2, _ := server(t, port)
	if addr2 != addr {
		t.Fatalf("restarted on %s, not %s", addr2, addr)
	}
	b := start(t, Config{Address: addr, ID: `"b"`, Policy: fast})
	if err := b.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// a may not have seen its old connection close yet, so LoggedIn can
	// still answer for it: until a is back, b's message is refused (410)
	// and sent again, a bounded number of times.
	for attempt := 0; ; attempt++ {
		if err := a.LoggedIn(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if err := b.Single(ctx(t), `"a"`, "after restart"); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-b.Messages():
			if m.Command != wire.CmdError || attempt == 100 {
				t.Fatalf("attempt %d: b got %d %s", attempt, m.Command, m.Body)
			}
			time.Sleep(10 * time.Millisecond) // a's reconnect has no event b can wait on
			continue
		case m := <-a.Messages():
			if m.Command != wire.CmdSingleMsg || !strings.Contains(string(m.Body), "after restart") {
				t.Fatalf("a got %d %s", m.Command, m.Body)
			}
		case <-time.After(wait):
			t.Fatal("no reply to b and no message to a")
		}
		break
	}
}

func TestClientHeartbeats(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clock := reactor.NewFakeClock(time.Unix(0, 0))
	c := start(t, Config{Address: ln.Addr().String(), ID: `7`, Version: 2, Heartbeat: 10 * time.Second, Clock: clock})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	var dec wire.Decoder
	buf := make([]byte, 4096)
	next := func() wire.Frame {
		t.Helper()
		for {
			var got []wire.Frame
			n, err := conn.Read(buf)
			dec.Feed(buf[:n], func(f wire.Frame) bool {
				f.Body = append([]byte(nil), f.Body...)
				got = append(got, f)
				return true
			})
			if len(got) == 1 {
				return got[0]
			}
			if len(got) > 1 || err != nil {
				t.Fatalf("frames %v, err %v", got, err)
			}
		}
	}
	if f := next(); f.Command != wire.CmdVerify || f.Version != 2 || string(f.Body) != `{"phone_number":7}` {
		t.Fatalf("first frame %d v%d %s", f.Command, f.Version, f.Body)
	}
	conn.Write(wire.AppendFrame(nil, 2, wire.CmdVerifyResult, []byte(`{"code":1}`)))
	if err := c.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := clock.WaitForTimers(ctx(t), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Second)
		if f := next(); f.Command != wire.CmdHeartbeat || len(f.Body) != 0 {
			t.Fatalf("heartbeat %d: got %d %s", i, f.Command, f.Body)
		}
	}
}

// Config.Dial makes the connections: one bound to 127.0.0.2 reaches the
// server from that address and logs in (chatload -sources relies on it).
func TestClientDialsFromLocalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c := start(t, Config{Address: ln.Addr().String(), ID: `"far"`, Heartbeat: -1, Dial: d.DialContext})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ip := conn.RemoteAddr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 2)) {
		t.Fatalf("connection from %v; want 127.0.0.2", ip)
	}
	conn.SetDeadline(time.Now().Add(wait))
	var dec wire.Decoder
	buf := make([]byte, 4096)
	for verified := false; !verified; {
		n, err := conn.Read(buf)
		dec.Feed(buf[:n], func(f wire.Frame) bool {
			verified = f.Command == wire.CmdVerify
			return true
		})
		if err != nil && !verified {
			t.Fatalf("no verify: %v", err)
		}
	}
	conn.Write(wire.AppendFrame(nil, 1, wire.CmdVerifyResult, []byte(`{"code":1}`)))
	if err := c.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestClientRejectsBadID(t *testing.T) {
	for _, id := range []string{``, `alice`, `1.5`, `""`} {
		if _, err := New("x", Config{Network: "tcp", Address: "127.0.0.1:1", ID: id}); err == nil {
			t.Errorf("ID %q accepted", id)
		}
	}
}

// fast retries quickly, so a client that wrongly reconnects does so well
// inside the tests' observation windows.
var fast = reactor.BackoffPolicy(10*time.Millisecond, 2, 100*time.Millisecond, nil)

// rawConn is the server's end of one connection to a hand-written server.
type rawConn struct {
	net.Conn
	dec    wire.Decoder
	frames []wire.Frame
	buf    []byte
}

// next returns the next frame the client sent.
func (r *rawConn) next() (wire.Frame, error) {
	for len(r.frames) == 0 {
		n, err := r.Read(r.buf)
		r.dec.Feed(r.buf[:n], func(f wire.Frame) bool {
			f.Body = bytes.Clone(f.Body)
			r.frames = append(r.frames, f)
			return true
		})
		if err != nil && len(r.frames) == 0 {
			return wire.Frame{}, err
		}
	}
	f := r.frames[0]
	r.frames = r.frames[1:]
	return f, nil
}

// verify reads the client's verify; false means it failed the test.
func (r *rawConn) verify(t *testing.T) (version uint32, ok bool) {
	f, err := r.next()
	if err != nil || f.Command != wire.CmdVerify {
		t.Errorf("expected a verify, got %d %s, err %v", f.Command, f.Body, err)
		return 0, false
	}
	return f.Version, true
}

func (r *rawConn) send(version, cmd uint32, body string) {
	r.Write(wire.AppendFrame(nil, version, cmd, []byte(body)))
}

// rawServer runs handle on each connection to a plain server on 127.0.0.1
// (n counts the connections from 1), every I/O bounded by wait. Each n is
// also reported on accepted.
func rawServer(t *testing.T, handle func(n int, rc *rawConn)) (addr string, accepted <-chan int) {
	t.Helper()
	ch := make(chan int, 100)
	var count atomic.Int64
	addr = testutil.ServeBare(t, func(conn net.Conn) {
		n := int(count.Add(1))
		conn.SetDeadline(time.Now().Add(wait))
		select {
		case ch <- n:
		default: // a reconnect loop; the test has seen enough
		}
		handle(n, &rawConn{Conn: conn, buf: make([]byte, 4096)})
	})
	return addr, ch
}

// within returns the next value on ch, failing the test if none comes
// within wait.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s after %v", what, wait)
		panic("unreachable")
	}
}

// closed fails unless ch is closed within wait.
func closed[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v, ok := <-ch:
		if m, isMsg := any(v).(Message); ok && isMsg {
			t.Fatalf("%s: got %d %s instead of the end", what, m.Command, m.Body)
		}
		if ok {
			t.Fatalf("%s: got %v instead of the end", what, v)
		}
	case <-time.After(wait):
		t.Fatalf("%s not closed after %v", what, wait)
	}
}

// stopQuickly stops c and fails if that is slow.
func stopQuickly(t *testing.T, c *Client) {
	t.Helper()
	begin := time.Now()
	if err := c.Stop(ctx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("Stop took %v", d)
	}
}

func TestClientStopsWhenLoginRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		keepOpen bool // the server leaves closing to the client
	}{
		{"server closes", 401, false},
		{"server keeps the connection", 403, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hungUp := make(chan error, 1)
			addr, accepted := rawServer(t, func(n int, rc *rawConn) {
				v, ok := rc.verify(t)
				if !ok {
					return
				}
				body, _ := json.Marshal(wire.ErrorBody{Code: tc.code, Error: "no such user"})
				rc.send(v, wire.CmdError, string(body))
				if tc.keepOpen {
					_, err := io.Copy(io.Discard, rc)
					hungUp <- err
				}
			})
			c := start(t, Config{Address: addr, ID: `"mallory"`, Policy: fast, Heartbeat: -1})

			begin := time.Now()
			err := c.LoggedIn(ctx(t))
			var re *RefusedError
			if !errors.Is(err, ErrRefused) || !errors.As(err, &re) || re.Code != tc.code || re.Message != "no such user" {
				t.Fatalf("LoggedIn: %v; want a refusal %d", err, tc.code)
			}
			if d := time.Since(begin); d > wait/5 {
				t.Fatalf("LoggedIn took %v to report the refusal", d)
			}
			if got := c.Err(); got != err {
				t.Fatalf("Err() = %v; LoggedIn said %v", got, err)
			}
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed after the refusal")
			}
			if tc.keepOpen {
				// The client hangs up by itself: a refused session is of
				// no use to anyone.
				select {
				case err := <-hungUp:
					if err != nil {
						t.Fatalf("server read: %v", err)
					}
				case <-time.After(wait):
					t.Fatal("client kept the refused connection open")
				}
			}
			<-accepted
			select {
			case n := <-accepted:
				t.Fatalf("client reconnected (connection %d) after the refusal", n)
			case <-time.After(time.Second):
			}
			for name, send := range map[string]func() error{
				"Send":      func() error { return c.Send(ctx(t), wire.CmdHeartbeat, nil) },
				"Single":    func() error { return c.Single(ctx(t), `"bob"`, "hi") },
				"Group":     func() error { return c.Group(ctx(t), []string{`"bob"`}, "hi") },
				"Broadcast": func() error { return c.Broadcast(ctx(t), "hi") },
			} {
				if err := send(); err != re {
					t.Errorf("%s: %v; want the refusal", name, err)
				}
			}
			closed(t, c.Messages(), "Messages")
			stopQuickly(t, c)
			if err := c.LoggedIn(ctx(t)); err != re {
				t.Fatalf("LoggedIn after Stop: %v; want the refusal", err)
			}
		})
	}
}

func TestClientStopsWhenReplaced(t *testing.T) {
	addr, _ := server(t, 0)
	first := start(t, Config{Address: addr, ID: `"dup"`, Policy: fast})
	third := start(t, Config{Address: addr, ID: `"third"`, Policy: fast})
	for _, c := range []*Client{first, third} {
		if err := c.LoggedIn(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	second := start(t, Config{Address: addr, ID: `"dup"`, Policy: fast})
	if err := second.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}

	// The 409 ends first's stream instead of arriving as a message.
	closed(t, first.Messages(), "first's Messages")
	if err := first.LoggedIn(ctx(t)); err != ErrReplaced {
		t.Fatalf("first LoggedIn: %v; want ErrReplaced", err)
	}
	if err := first.Single(ctx(t), `"third"`, "still me?"); err != ErrReplaced {
		t.Fatalf("first Single: %v; want ErrReplaced", err)
	}
	if err := first.Err(); err != ErrReplaced {
		t.Fatalf("first Err: %v", err)
	}
	closed(t, first.Done(), "first's Done")

	// A first that logged in again would evict second, which would get a
	// 409 of its own.
	select {
	case m, ok := <-second.Messages():
		if !ok {
			t.Fatalf("second ended (%v): evicted by a reconnecting first?", second.Err())
		}
		t.Fatalf("second got %d %s: evicted by a reconnecting first?", m.Command, m.Body)
	case <-time.After(time.Second):
	}
	if err := second.Err(); err != nil {
		t.Fatalf("second ended: %v", err)
	}
	if err := third.Single(ctx(t), `"dup"`, "to the survivor"); err != nil {
		t.Fatal(err)
	}
	expect(t, second, wire.CmdSingleMsg, `"third"`, "to the survivor")
	if err := second.Single(ctx(t), `"third"`, "from the survivor"); err != nil {
		t.Fatal(err)
	}
	expect(t, third, wire.CmdSingleMsg, `"dup"`, "from the survivor")
	stopQuickly(t, first)
}

func TestClientSurvivesOtherErrorsAndDisconnects(t *testing.T) {
	got := make(chan string, 10) // broadcast contents, as the server saw them
	addr, accepted := rawServer(t, func(n int, rc *rawConn) {
		v, ok := rc.verify(t)
		if !ok {
			return
		}
		switch n {
		case 1:
			return // the server dies before answering the verify
		case 2:
			rc.send(v, wire.CmdVerifyResult, `{"code":1}`)
			// After the login no error reply ends the client, not even
			// the codes that would refuse a verify.
			rc.send(v, wire.CmdError, `{"code":410,"error":"offline","undelivered":["bob"]}`)
			rc.send(v, wire.CmdError, `{"code":404,"error":"unknown command 9"}`)
			rc.send(v, wire.CmdError, `{"code":401,"error":"verify first"}`)
		default:
			rc.send(v, wire.CmdVerifyResult, `{"code":1}`)
		}
		f, err := rc.next()
		if err != nil || f.Command != wire.CmdBroadcast {
			t.Errorf("connection %d: got %d %s, err %v; want a broadcast", n, f.Command, f.Body, err)
			return
		}
		var c wire.Chat
		json.Unmarshal(f.Body, &c)
		var content string
		json.Unmarshal(c.Content, &content)
		got <- content
		if n == 2 {
			return // a transient disconnect: closed with no error reply
		}
		io.Copy(io.Discard, rc)
	})
	c := start(t, Config{Address: addr, ID: `"carol"`, Policy: fast, Heartbeat: -1})
	if err := c.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{410, 404, 401} {
		m := within(t, c.Messages(), fmt.Sprintf("error %d", code))
		var e wire.ErrorBody
		if json.Unmarshal(m.Body, &e); m.Command != wire.CmdError || e.Code != code {
			t.Fatalf("got %d %s; want error %d", m.Command, m.Body, code)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("ended by an ordinary error reply: %v", err)
	}
	if err := c.Broadcast(ctx(t), "before"); err != nil {
		t.Fatal(err)
	}
	if s := within(t, got, "broadcast at the server"); s != "before" {
		t.Fatalf("server got %q; want %q", s, "before")
	}
	// Connection 2 now closes; the client must come back on a third.
	for want := 1; want <= 3; want++ {
		if n := within(t, accepted, "connection: the client did not reconnect"); n != want {
			t.Fatalf("accept %d; want %d", n, want)
		}
	}
	if err := c.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Broadcast(ctx(t), "after"); err != nil {
		t.Fatal(err)
	}
	if s := within(t, got, "broadcast at the server"); s != "after" {
		t.Fatalf("server got %q; want %q", s, "after")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("ended by a disconnect: %v", err)
	}
	stopQuickly(t, c)
	closed(t, c.Messages(), "Messages after Stop")
	closed(t, c.Done(), "Done after Stop")
}
