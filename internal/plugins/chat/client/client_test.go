package client

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
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
	if err := a.LoggedIn(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Single(ctx(t), `"a"`, "after restart"); err != nil {
		t.Fatal(err)
	}
	expect(t, a, wire.CmdSingleMsg, `"b"`, "after restart")
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

func TestClientRejectsBadID(t *testing.T) {
	for _, id := range []string{``, `alice`, `1.5`, `""`} {
		if _, err := New("x", Config{Network: "tcp", Address: "127.0.0.1:1", ID: id}); err == nil {
			t.Errorf("ID %q accepted", id)
		}
	}
}
