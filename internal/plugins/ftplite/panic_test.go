package ftplite

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
	"github.com/twistd-go/twistd/internal/testutil"
)

// panicky is a session whose "PANIC" command starts a job that panics, as
// a bug in a transfer would.
type panicky struct{ *session }

func (p panicky) DataReceived(b []byte) {
	if bytes.HasPrefix(b, []byte("PANIC")) {
		p.mu.Lock()
		p.startJob("transfer", true, func(context.Context) result { panic("transfer told to panic") })
		p.mu.Unlock()
		return
	}
	p.session.DataReceived(b)
}

// A panic in a session's job closes that session only, logged with its
// stack; the server serves the next client.
func TestJobPanicClosesOnlyThatSession(t *testing.T) {
	ts := newTestServer(t, nil) // for its root and configuration
	logs := &testutil.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	srv := newServer("ftp-lite", ts.cfg, log)
	port := reactor.NewPort("listener", reactor.Endpoint{Kind: "tcp", Interface: "127.0.0.1"},
		reactor.FactoryFunc(func(net.Addr) reactor.Protocol { return panicky{newSession(srv)} }), log)
	c := service.NewCollection("ftp-lite", log)
	c.Add(srv)
	c.Add(port)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		nc, err := net.Dial("tcp", port.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(nc)
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
			t.Fatalf("greeting %q, %v", l, err)
		}
		return nc, r
	}
	other, otherR := dial()
	bad, badR := dial()
	bad.Write([]byte("PANIC\r\n"))
	if l, err := badR.ReadString('\n'); err == nil {
		t.Fatalf("session whose job panicked answered %q; want it closed", l)
	}
	noop := func(c net.Conn, r *bufio.Reader) {
		t.Helper()
		c.Write([]byte("NOOP\r\n"))
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "200 ") {
			t.Fatalf("NOOP after another session's panic: %q, %v", l, err)
		}
	}
	noop(other, otherR)
	noop(dial())
	if !strings.Contains(logs.String(), "transfer told to panic") || !strings.Contains(logs.String(), "panic_test.go") {
		t.Fatalf("panic not logged with its stack:\n%s", logs)
	}
}
