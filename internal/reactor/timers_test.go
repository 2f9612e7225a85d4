package reactor

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestCallLaterFakeClock(t *testing.T) {
	c := NewFakeClock(epoch)
	var fired atomic.Int32
	var at time.Time
	dc := CallLater(c, 5*time.Second, func() { fired.Add(1); at = c.Now() })
	if got := c.Pending(); len(got) != 1 || got[0] != 5*time.Second {
		t.Fatalf("pending = %v, want [5s]", got)
	}
	c.Advance(4999 * time.Millisecond)
	if fired.Load() != 0 || !dc.Active() {
		t.Fatal("fired early")
	}
	c.Advance(time.Millisecond)
	if fired.Load() != 1 || dc.Active() {
		t.Fatalf("fired %d times, active=%v; want once and inactive", fired.Load(), dc.Active())
	}
	if !at.Equal(epoch.Add(5 * time.Second)) {
		t.Fatalf("callback saw Now()=%v", at)
	}
	if dc.Cancel() {
		t.Fatal("Cancel after firing reported success")
	}
	c.Advance(time.Hour)
	if fired.Load() != 1 {
		t.Fatal("fired twice")
	}
}

func TestCallLaterCancelAndReset(t *testing.T) {
	c := NewFakeClock(epoch)
	var fired atomic.Int32
	dc := CallLater(c, time.Second, func() { fired.Add(1) })
	if !dc.Cancel() || dc.Active() {
		t.Fatal("Cancel of a pending call failed")
	}
	if len(c.Pending()) != 0 {
		t.Fatal("cancelled timer still pending")
	}
	c.Advance(time.Minute)
	if fired.Load() != 0 {
		t.Fatal("cancelled call fired")
	}

	dc = CallLater(c, time.Second, func() { fired.Add(1) })
	c.Advance(900 * time.Millisecond)
	if !dc.Reset(time.Second) {
		t.Fatal("Reset of a pending call failed")
	}
	c.Advance(900 * time.Millisecond) // 1.8 s after scheduling: the original slot has passed
	if fired.Load() != 0 {
		t.Fatal("reset call fired at its old time")
	}
	c.Advance(100 * time.Millisecond)
	if fired.Load() != 1 {
		t.Fatal("reset call did not fire at its new time")
	}
}

func TestLoopingCallFakeClock(t *testing.T) {
	c := NewFakeClock(epoch)
	var times []time.Duration
	l := NewLoopingCall(c, func() { times = append(times, c.Now().Sub(epoch)) })
	if err := l.Start(10*time.Second, true); err != nil {
		t.Fatal(err)
	}
	if len(times) != 1 || times[0] != 0 {
		t.Fatalf("now=true: calls at %v, want [0s]", times)
	}
	if err := l.Start(time.Second, false); err == nil {
		t.Fatal("second Start accepted")
	}
	c.Advance(35 * time.Second)
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
	if len(times) != len(want) {
		t.Fatalf("calls at %v, want %v", times, want)
	}
	for i := range want {
		if times[i] != want[i] {
			t.Fatalf("calls at %v, want %v", times, want)
		}
	}
	l.Stop()
	l.Stop() // idempotent
	c.Advance(time.Minute)
	if len(times) != 4 || l.Running() || len(c.Pending()) != 0 {
		t.Fatalf("after Stop: %d calls, running=%v, pending=%v", len(times), l.Running(), c.Pending())
	}
	if err := l.Start(5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	c.Advance(5 * time.Second)
	if len(times) != 5 {
		t.Fatal("restarted loop did not call")
	}
	l.Stop()
	if err := NewLoopingCall(c, func() {}).Start(0, false); err == nil {
		t.Fatal("zero interval accepted")
	}
}

// An overrunning call skips the slots it covered instead of running them
// back to back (Twisted's LoopingCall does the same).
func TestLoopingCallSkipsMissedSlots(t *testing.T) {
	c := NewFakeClock(epoch)
	var times []time.Duration
	l := NewLoopingCall(c, func() {
		times = append(times, c.Now().Sub(epoch))
		if len(times) == 2 {
			c.Advance(25 * time.Second) // this call takes 25 s
		}
	})
	l.Start(10*time.Second, true)
	c.Advance(60 * time.Second)
	l.Stop()
	// 0, 10 (runs until 35), then 40, 50, 60.
	want := []time.Duration{0, 10 * time.Second, 40 * time.Second, 50 * time.Second, 60 * time.Second}
	if len(times) != len(want) {
		t.Fatalf("calls at %v, want %v", times, want)
	}
	for i := range want {
		if times[i] != want[i] {
			t.Fatalf("calls at %v, want %v", times, want)
		}
	}
}

// Stop waits for a call in progress. Inside a synctest bubble the real
// clock's timers run on fake time, and synctest.Wait tells when Stop is
// blocked.
func TestLoopingCallStopWaitsForCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		var finished atomic.Bool
		l := NewLoopingCall(nil, func() {
			close(started)
			<-release
			finished.Store(true)
		})
		l.Start(time.Second, false)
		<-started
		var stopped atomic.Bool
		go func() { l.Stop(); stopped.Store(true) }()
		synctest.Wait()
		if stopped.Load() {
			t.Fatal("Stop returned while the call was still running")
		}
		close(release)
		synctest.Wait()
		if !stopped.Load() || !finished.Load() {
			t.Fatalf("stopped=%v finished=%v", stopped.Load(), finished.Load())
		}
		time.Sleep(10 * time.Second) // fake time: no further calls
		if l.Calls() != 1 {
			t.Fatalf("%d calls after Stop, want 1", l.Calls())
		}
	})
}

func TestFakeClockWaitForTimers(t *testing.T) {
	c := NewFakeClock(epoch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go c.AfterFunc(time.Second, func() {})
	if err := c.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := c.WaitForTimers(short, 2); err == nil {
		t.Fatal("WaitForTimers(2) returned with one timer")
	}
}
