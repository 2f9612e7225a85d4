package reactor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// worker starts, on "work", a goroutine that waits for its connection to
// close, and on "boom" one that panics; lost records whether every
// goroutine had returned when ConnectionLost ran.
type worker struct {
	t       Transport
	running atomic.Int32
	lost    chan error
	early   chan bool // ConnectionLost ran with a goroutine still running
}

func (w *worker) ConnectionMade(t Transport) { w.t = t }
func (w *worker) DataReceived(p []byte) {
	switch {
	case bytes.Contains(p, []byte("work")):
		w.running.Add(1)
		w.t.Go(func(ctx context.Context) {
			defer w.running.Add(-1)
			w.t.Write([]byte("started\n"))
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // cleanup ConnectionLost must wait for
		})
	case bytes.Contains(p, []byte("boom")):
		w.t.Go(func(context.Context) { panic("job told to panic") })
	default:
		w.t.Write(p)
	}
}
func (w *worker) ConnectionLost(err error) {
	w.early <- w.running.Load() != 0
	w.lost <- err
}

// A panic in a goroutine the connection owns closes that connection only,
// logged with its stack; its other goroutines see their context end and
// ConnectionLost runs after they returned; the port serves on.
func TestJobPanicClosesOnlyThatConnection(t *testing.T) {
	workers := make(chan *worker, 10)
	tp := startPortWith(t, context.Background(), func() Protocol {
		w := &worker{lost: make(chan error, 1), early: make(chan bool, 1)}
		workers <- w
		return w
	}, nil)
	other := tp.dial(t)
	roundTrip(t, other, "hello")
	<-workers
	bad := tp.dial(t)
	bad.Write([]byte("work"))
	expectRead(t, bad, "started\n")
	w := <-workers
	bad.Write([]byte("boom"))
	if n, err := bad.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("connection whose goroutine panicked: read %d, %v; want it closed", n, err)
	}
	if <-w.early {
		t.Fatal("ConnectionLost ran before the connection's goroutines returned")
	}
	if err := <-w.lost; !errors.Is(err, errPanic) {
		t.Fatalf("ConnectionLost(%v), want the panic", err)
	}
	logs := tp.logs.String()
	if strings.Count(logs, "panic in a goroutine of the connection: job told to panic") != 1 || !strings.Contains(logs, "jobs_test.go") {
		t.Fatalf("panic not logged once with its stack:\n%s", logs)
	}
	roundTrip(t, other, "still served")
	fresh := tp.dial(t)
	roundTrip(t, fresh, "new one too")
	if w.t.Go(func(context.Context) { t.Error("ran on a closed connection") }) {
		t.Fatal("Go on a closed connection reported it ran")
	}
}

// Ending the port ends the goroutines its connections own before Stop
// returns.
func TestStopWaitsForConnectionGoroutines(t *testing.T) {
	var w *worker
	made := make(chan struct{})
	tp := startPortWith(t, context.Background(), func() Protocol {
		w = &worker{lost: make(chan error, 1), early: make(chan bool, 1)}
		close(made)
		return w
	}, nil)
	c := tp.dial(t)
	c.Write([]byte("work"))
	expectRead(t, c, "started\n")
	<-made
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tp.Stop(ctx)
	if w.running.Load() != 0 || <-w.early {
		t.Fatal("Stop returned with a connection's goroutine running")
	}
}
