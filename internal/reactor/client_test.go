package reactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// recorder is a protocol that reports its events on channels.
type recorder struct {
	t    Transport
	made chan Transport
	data chan []byte
	lost chan error
}

func newRecorder() *recorder {
	return &recorder{made: make(chan Transport, 1), data: make(chan []byte, 64), lost: make(chan error, 1)}
}

func (r *recorder) ConnectionMade(t Transport) { r.t = t; r.made <- t }
func (r *recorder) DataReceived(p []byte)      { r.data <- append([]byte(nil), p...) }
func (r *recorder) ConnectionLost(err error)   { r.lost <- err }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// freeAddr returns a loopback TCP address nobody listens on right now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// expectPending waits until the service has scheduled its retry and checks
// the delay.
func expectPending(t *testing.T, c *FakeClock, want time.Duration) {
	t.Helper()
	if err := c.WaitForTimers(waitCtx(t), 1); err != nil {
		t.Fatalf("no retry scheduled: %v", err)
	}
	if got := c.Pending(); len(got) != 1 || got[0] != want {
		t.Fatalf("pending retries %v, want [%v]", got, want)
	}
}

func TestBackoffPolicyDefaults(t *testing.T) {
	p := BackoffPolicy(time.Second, 1.5, time.Minute, nil)
	for n, want := range map[int]time.Duration{1: 1500 * time.Millisecond, 2: 2250 * time.Millisecond, 10: 57665039062, 11: time.Minute, 1000: time.Minute} {
		if got := p(n); got != want {
			t.Errorf("policy(%d) = %v, want %v", n, got, want)
		}
	}
	for range 100 {
		d := DefaultRetryPolicy(1)
		if d < 1500*time.Millisecond || d >= 2500*time.Millisecond {
			t.Fatalf("default policy(1) = %v, want 1.5 s plus jitter below 1 s", d)
		}
	}
}

func TestClientServiceReconnects(t *testing.T) {
	addr := freeAddr(t)
	clock := NewFakeClock(epoch)
	protos := make(chan *recorder, 4)
	cs := NewClientService("client", "tcp", addr, FactoryFunc(func(net.Addr) Protocol {
		r := newRecorder()
		protos <- r
		return r
	}), testLogger(t))
	cs.Clock = clock
	cs.Policy = BackoffPolicy(time.Second, 1.5, time.Minute, func() time.Duration { return 250 * time.Millisecond })
	if err := cs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cs.Stop(context.Background())

	// Nobody listens: first retry after 1.5 s + jitter, then 2.25 s + jitter.
	expectPending(t, clock, 1750*time.Millisecond)
	clock.Advance(1750 * time.Millisecond)
	expectPending(t, clock, 2500*time.Millisecond)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken by another process meanwhile: %v", addr, err)
	}
	defer ln.Close()
	clock.Advance(2500 * time.Millisecond)
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p, err := cs.WhenConnected(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	r := <-protos
	if p != r {
		t.Fatal("WhenConnected returned another protocol")
	}
	r.t.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("server read %q, %v", buf, err)
	}

	// The server drops the connection: the count restarts, so the next
	// attempt comes 1.5 s + jitter later.
	server.Close()
	if err := <-r.lost; err != nil {
		t.Fatalf("ConnectionLost(%v), want nil for a clean close", err)
	}
	expectPending(t, clock, 1750*time.Millisecond)
	clock.Advance(1750 * time.Millisecond)
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	r2 := <-protos
	if p, err := cs.WhenConnected(waitCtx(t)); err != nil || p != r2 {
		t.Fatalf("WhenConnected after reconnect = %v, %v", p, err)
	}

	// Stop while connected closes the connection and returns once it is
	// closed; the server sees EOF and nothing reconnects.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { io.Copy(io.Discard, server); server.Close() }()
	if err := cs.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r2.lost:
	default:
		t.Fatal("Stop returned before ConnectionLost")
	}
	if got := clock.Pending(); len(got) != 0 {
		t.Fatalf("retry scheduled after Stop: %v", got)
	}
	if _, err := cs.WhenConnected(waitCtx(t)); !errors.Is(err, ErrServiceStopped) {
		t.Fatalf("WhenConnected after Stop: %v", err)
	}
	if err := cs.Start(context.Background()); err == nil {
		t.Fatal("Start after Stop accepted")
	}
}

func TestClientServiceStopWhileWaitingForRetry(t *testing.T) {
	clock := NewFakeClock(epoch)
	dials := make(chan struct{}, 8)
	cs := NewClientService("client", "tcp", freeAddr(t), FactoryFunc(func(net.Addr) Protocol { return newRecorder() }), testLogger(t))
	cs.Clock = clock
	cs.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		dials <- struct{}{}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	cs.Start(context.Background())
	if err := clock.WaitForTimers(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan error, 1)
	go func() { _, err := cs.WhenConnected(context.Background()); waiter <- err }()
	if err := cs.Stop(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-waiter; !errors.Is(err, ErrServiceStopped) {
		t.Fatalf("waiting WhenConnected got %v, want ErrServiceStopped", err)
	}
	clock.Advance(time.Hour)
	if n := len(dials); n != 1 {
		t.Fatalf("%d dial attempts, want 1 (none after Stop)", n)
	}
}

func TestClientServiceStopDuringConnect(t *testing.T) {
	inDial := make(chan struct{})
	cs := NewClientService("client", "tcp", "127.0.0.1:1", FactoryFunc(func(net.Addr) Protocol { return newRecorder() }), testLogger(t))
	cs.Clock = NewFakeClock(epoch)
	cs.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		close(inDial) // a second dial would panic here
		<-ctx.Done()  // an attempt that hangs until cancelled
		return nil, ctx.Err()
	}
	cs.Start(context.Background())
	<-inDial
	if err := cs.Stop(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestClientServiceWhenConnectedContext(t *testing.T) {
	cs := NewClientService("client", "tcp", freeAddr(t), FactoryFunc(func(net.Addr) Protocol { return newRecorder() }), testLogger(t))
	cs.Clock = NewFakeClock(epoch)
	cs.Start(context.Background())
	defer cs.Stop(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cs.WhenConnected(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WhenConnected with a cancelled ctx: %v", err)
	}
}

// quitter gives its service up when the server says anything.
type quitter struct {
	*recorder
	cs *ClientService
}

func (q quitter) DataReceived(p []byte) { q.cs.GiveUp(fmt.Errorf("server said %q", p)) }

func TestClientServiceGiveUpFromTheProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := newRecorder()
	var cs *ClientService
	cs = NewClientService("client", "tcp", ln.Addr().String(), FactoryFunc(func(net.Addr) Protocol { return quitter{r, cs} }), testLogger(t))
	cs.Clock = NewFakeClock(epoch) // a planned retry would wait forever
	cs.Policy = func(int) time.Duration {
		t.Error("retry planned after GiveUp")
		return time.Hour
	}
	if err := cs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cs.Stop(context.Background())
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	server.Write([]byte("go away"))
	if _, err := io.Copy(io.Discard, server); err != nil {
		t.Fatalf("the client did not hang up: %v", err)
	}
	// The loop ends by itself: GiveUp cancelled it before the connection
	// ended, so it never asked the policy for a delay.
	select {
	case <-cs.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the retry loop went on after GiveUp")
	}
	if err := <-r.lost; err != nil {
		t.Fatalf("ConnectionLost(%v), want nil for a clean close", err)
	}
	if _, err := cs.WhenConnected(waitCtx(t)); !errors.Is(err, ErrServiceStopped) {
		t.Fatalf("WhenConnected after GiveUp: %v", err)
	}
	if err := cs.Stop(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := cs.Start(context.Background()); err == nil {
		t.Fatal("Start after GiveUp accepted")
	}
}
