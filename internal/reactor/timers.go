package reactor

import (
	"errors"
	"sync"
	"time"
)

// DelayedCall is a call scheduled by CallLater (Twisted's IDelayedCall).
type DelayedCall struct {
	clock Clock
	f     func()

	mu    sync.Mutex
	timer Timer
	gen   uint64 // bumped by Cancel and Reset so a stale timer does nothing
	when  time.Time
	done  bool // fired or cancelled
}

// CallLater calls f once after d on clock c (nil means RealClock). f runs
// in a goroutine of its own, not on any connection's goroutine: a protocol
// that uses it must guard its own state, and may call Transport methods,
// which are safe from any goroutine.
func CallLater(c Clock, d time.Duration, f func()) *DelayedCall {
	dc := &DelayedCall{clock: orReal(c), f: f}
	dc.mu.Lock()
	dc.schedule(d)
	dc.mu.Unlock()
	return dc
}

// schedule arms the timer; dc.mu is held.
func (dc *DelayedCall) schedule(d time.Duration) {
	dc.gen++
	gen := dc.gen
	dc.when = dc.clock.Now().Add(d)
	dc.timer = dc.clock.AfterFunc(d, func() { dc.fire(gen) })
}

func (dc *DelayedCall) fire(gen uint64) {
	dc.mu.Lock()
	if dc.done || gen != dc.gen {
		dc.mu.Unlock()
		return
	}
	dc.done = true
	dc.mu.Unlock()
	dc.f()
}

// Cancel prevents the call. It reports whether it did: false means the
// call has already started (or was cancelled before).
func (dc *DelayedCall) Cancel() bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.done {
		return false
	}
	dc.done = true
	dc.gen++
	dc.timer.Stop()
	return true
}

// Reset moves a pending call to d from now. It reports false, and does
// nothing, if the call already ran or was cancelled.
func (dc *DelayedCall) Reset(d time.Duration) bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.done {
		return false
	}
	dc.timer.Stop()
	dc.schedule(d)
	return true
}

// Active reports whether the call is still pending.
func (dc *DelayedCall) Active() bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return !dc.done
}

// When returns the time the call is (or was) due.
func (dc *DelayedCall) When() time.Time {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.when
}

// LoopingCall calls a function at a fixed interval (Twisted's
// task.LoopingCall). Calls never overlap; when a call overruns, the
// intervals it covered are skipped rather than run back to back.
type LoopingCall struct {
	clock Clock
	f     func()

	mu       sync.Mutex
	idle     *sync.Cond // signalled when a call returns
	running  bool
	calling  bool
	gen      uint64
	start    time.Time
	interval time.Duration
	timer    Timer
	calls    int
}

// NewLoopingCall returns a stopped loop calling f on clock c (nil means
// RealClock). f runs on a timer goroutine (or in FakeClock.Advance); like
// CallLater's, it must guard the state it shares.
func NewLoopingCall(c Clock, f func()) *LoopingCall {
	l := &LoopingCall{clock: orReal(c), f: f}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// Start begins calling f every interval; with now, the first call happens
// before Start returns instead of one interval later.
func (l *LoopingCall) Start(interval time.Duration, now bool) error {
	if interval <= 0 {
		return errors.New("looping call: interval must be positive")
	}
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return errors.New("looping call: already running")
	}
	l.running = true
	l.gen++
	l.interval = interval
	l.start = l.clock.Now()
	gen := l.gen
	if !now {
		l.timer = l.clock.AfterFunc(interval, func() { l.fire(gen) })
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	l.fire(gen)
	return nil
}

func (l *LoopingCall) fire(gen uint64) {
	l.mu.Lock()
	if !l.running || gen != l.gen || l.calling {
		l.mu.Unlock()
		return
	}
	l.calling = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.calling = false
		l.calls++
		l.idle.Broadcast()
		if !l.running || gen != l.gen {
			return
		}
		// The next slot strictly after now on the start + k*interval grid.
		elapsed := l.clock.Now().Sub(l.start)
		next := (elapsed/l.interval + 1) * l.interval
		l.timer = l.clock.AfterFunc(next-elapsed, func() { l.fire(gen) })
	}()
	l.f()
}

// Stop ends the loop; if a call is in progress it waits for it to return.
// It is idempotent. f itself must not call Stop (it would wait for itself):
// to end the loop from f, call Stop in a new goroutine.
func (l *LoopingCall) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		l.running = false
		l.gen++
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
	}
	for l.calling {
		l.idle.Wait()
	}
}

// Running reports whether the loop is started and not stopped.
func (l *LoopingCall) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// Calls returns how many calls have completed.
func (l *LoopingCall) Calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}
