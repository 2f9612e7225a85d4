package reactor

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is the source of time for timers, retry delays and idle timeouts
// (Twisted's IReactorTime). Code that takes a Clock can be tested with a
// FakeClock instead of sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, in its own goroutine or (FakeClock) in the
	// goroutine that advances time, after d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did.
	Stop() bool
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// orReal returns c, or RealClock when c is nil.
func orReal(c Clock) Clock {
	if c == nil {
		return RealClock
	}
	return c
}

// FakeClock is a Clock for tests (Twisted's task.Clock): time stands still
// until Advance moves it, and due callbacks run inside Advance, in deadline
// order, each seeing Now() equal to its deadline.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever timers are added
}

type fakeTimer struct {
	c    *FakeClock
	when time.Time
	seq  uint64
	f    func()
}

// NewFakeClock returns a fake clock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d; it runs during a later Advance (or
// Advance(0) for d <= 0).
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// Advance moves time forward by d, running every callback that falls due
// on the way, including ones scheduled by those callbacks.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		t := c.next()
		if t == nil || t.when.After(end) {
			break
		}
		c.timers = slices.DeleteFunc(c.timers, func(x *fakeTimer) bool { return x == t })
		c.now = t.when
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// next returns the earliest pending timer; c.mu is held.
func (c *FakeClock) next() *fakeTimer {
	var best *fakeTimer
	for _, t := range c.timers {
		if best == nil || t.when.Before(best.when) || (t.when.Equal(best.when) && t.seq < best.seq) {
			best = t
		}
	}
	return best
}

// Pending returns how far in the future each pending timer is, soonest
// first.
func (c *FakeClock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t.when.Sub(c.now))
	}
	slices.Sort(out)
	return out
}

// WaitForTimers blocks until at least n timers are pending or ctx ends, so
// a test can wait for code running in another goroutine to schedule its
// next call before advancing time.
func (c *FakeClock) WaitForTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		have, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
