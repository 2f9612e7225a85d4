package service

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a service that appends its events to a shared log.
type recorder struct {
	name     string
	events   *[]string
	mu       *sync.Mutex
	startErr error
	privErr  error
	// blockStop makes Stop wait for the context to end.
	blockStop bool
	stopCtxOK bool // whether ctx was still live when Stop began
}

func (r *recorder) note(e string) {
	r.mu.Lock()
	*r.events = append(*r.events, e+" "+r.name)
	r.mu.Unlock()
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) PrivilegedStart(context.Context) error {
	r.note("priv")
	return r.privErr
}
func (r *recorder) Start(context.Context) error {
	r.note("start")
	return r.startErr
}
func (r *recorder) Stop(ctx context.Context) error {
	r.stopCtxOK = ctx.Err() == nil
	r.note("stop")
	if r.blockStop {
		<-ctx.Done()
	}
	return nil
}

type fixture struct {
	mu     sync.Mutex
	events []string
}

func (f *fixture) svc(name string) *recorder {
	return &recorder{name: name, events: &f.events, mu: &f.mu}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestOrderAndReverseStop(t *testing.T) {
	var f fixture
	root := NewCollection("app", quiet())
	group := NewCollection("group", quiet())
	for _, s := range []Service{f.svc("a"), group, f.svc("d")} {
		if err := root.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	group.Add(f.svc("b"))
	group.Add(f.svc("c"))
	ctx := context.Background()
	if err := root.PrivilegedStart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := root.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := root.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"priv a", "priv b", "priv c", "priv d", "start a", "start b", "start c", "start d",
		"stop d", "stop c", "stop b", "stop a"}
	if !slices.Equal(f.events, want) {
		t.Fatalf("events\n got %v\nwant %v", f.events, want)
	}
	// A second Stop is a no-op.
	root.Stop(ctx)
	if len(f.events) != len(want) {
		t.Fatalf("second Stop stopped again: %v", f.events)
	}
}

func TestNames(t *testing.T) {
	var f fixture
	c := NewCollection("app", quiet())
	if err := c.Add(f.svc("x")); err != nil {
		t.Fatal(err)
	}
	err := c.Add(f.svc("x"))
	if err == nil || !strings.Contains(err.Error(), `already has a service named "x"`) {
		t.Fatalf("duplicate name: got %v", err)
	}
	if err := c.Add(f.svc("")); err == nil {
		t.Fatal("empty name accepted")
	}
	// The same name is fine in another collection.
	other := NewCollection("other", quiet())
	if err := other.Add(f.svc("x")); err != nil {
		t.Fatal(err)
	}
	if s, ok := c.Lookup("x"); !ok || s.Name() != "x" {
		t.Fatal("Lookup failed")
	}
	if _, ok := c.Lookup("nope"); ok {
		t.Fatal("Lookup found a missing service")
	}
}

func TestStartFailureUnwinds(t *testing.T) {
	var f fixture
	c := NewCollection("app", quiet())
	a, b, d := f.svc("a"), f.svc("b"), f.svc("d")
	b.startErr = errors.New("boom")
	c.Add(a)
	c.Add(b)
	c.Add(d)
	c.PrivilegedStart(context.Background())
	err := c.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
	// d was bound but never started: it is stopped too, so it releases its socket.
	want := []string{"priv a", "priv b", "priv d", "start a", "start b", "stop d", "stop b", "stop a"}
	if !slices.Equal(f.events, want) {
		t.Fatalf("events\n got %v\nwant %v", f.events, want)
	}
}

func TestPrivilegedFailureStopsBound(t *testing.T) {
	var f fixture
	c := NewCollection("app", quiet())
	a, b := f.svc("a"), f.svc("b")
	b.privErr = errors.New("port in use")
	c.Add(a)
	c.Add(b)
	if err := c.PrivilegedStart(context.Background()); err == nil {
		t.Fatal("no error")
	}
	want := []string{"priv a", "priv b", "stop b", "stop a"}
	if !slices.Equal(f.events, want) {
		t.Fatalf("events\n got %v\nwant %v", f.events, want)
	}
}

func TestStopDeadlineHonoured(t *testing.T) {
	var f fixture
	c := NewCollection("app", quiet())
	first, slow := f.svc("first"), f.svc("slow")
	slow.blockStop = true
	c.Add(first)
	c.Add(slow)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { c.Stop(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after its deadline")
	}
	if !slow.stopCtxOK {
		t.Error("slow service got an expired context")
	}
	// first is stopped after the deadline: it must see the expired context
	// (its cue to close hard) and still be stopped.
	if first.stopCtxOK {
		t.Error("service stopped after the deadline got a live context")
	}
	if !slices.Contains(f.events, "stop first") {
		t.Error("service after the deadline was not stopped")
	}
}

func TestTree(t *testing.T) {
	var f fixture
	root := NewCollection("app", quiet())
	g := NewCollection("g", quiet())
	g.Add(f.svc("leaf"))
	root.Add(g)
	got := Tree(root)
	want := "app\n  g\n    leaf\n"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}
