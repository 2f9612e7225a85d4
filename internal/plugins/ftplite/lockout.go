package ftplite

import (
	"context"
	"time"
)

// Failed logins cost the address they come from, not the session: after
// lockAfter failures the address is refused (421 at connect, USER and
// PASS) for lockFirst, and each further failure doubles the period up to
// lockMax. A success clears the record. Reconnecting changes nothing, and
// the password checks of one address run one at a time, so parallel
// sessions cannot guess past the limit either: from one address that is
// lockAfter guesses, then one per period.
const (
	lockAfter = 3
	lockFirst = time.Minute
	lockMax   = time.Hour
	// failMemory is how long a record outlives its last failure (and its
	// lock-out) before the address starts afresh.
	failMemory = 10 * time.Minute
)

type failRecord struct {
	n      int       // failures since the last success
	last   time.Time // of the last failure
	until  time.Time // refused until then
	logged time.Time // the until of the last refusal logged
}

// turn lets one password check of an address run at a time.
type turn struct {
	ch   chan struct{} // holds a token while a check runs
	refs int
}

// waitTurn waits until no other password check from ip runs. It returns
// the function that ends the turn, or ctx's error.
func (s *server) waitTurn(ctx context.Context, ip string) (func(), error) {
	s.mu.Lock()
	t := s.turns[ip]
	if t == nil {
		t = &turn{ch: make(chan struct{}, 1)}
		s.turns[ip] = t
	}
	t.refs++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if t.refs--; t.refs == 0 {
			delete(s.turns, ip)
		}
		s.mu.Unlock()
	}
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// lockedFor returns how long ip stays refused; 0 when it is not.
func (s *server) lockedFor(ip string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.fails[ip]; r != nil {
		return max(0, r.until.Sub(s.cfg.now()))
	}
	return 0
}

// refusing is lockedFor for a refusal about to be made; first is true
// for the first of a lock-out period only, so that a client hammering a
// refused address writes one log line, not one per connection.
func (s *server) refusing(ip string) (wait time.Duration, first bool) {
	if wait = s.lockedFor(ip); wait <= 0 {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.fails[ip]
	if r == nil { // a success from ip cleared it meanwhile
		return 0, false
	}
	first = !r.logged.Equal(r.until)
	r.logged = r.until
	return wait, first
}

// loginFailed records a failure from ip. It returns how long to wait
// before answering (growing with the recent failures) and whether the
// address is now refused.
func (s *server) loginFailed(ip string) (delay time.Duration, locked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	for k, r := range s.fails {
		if now.After(r.until) && now.Sub(r.last) > failMemory {
			delete(s.fails, k)
		}
	}
	r := s.fails[ip]
	if r == nil {
		r = &failRecord{}
		s.fails[ip] = r
	}
	r.n++
	r.last = now
	if r.n >= lockAfter {
		r.until = now.Add(min(lockMax, lockFirst<<min(r.n-lockAfter, 10)))
	}
	return s.cfg.LoginDelay * time.Duration(min(r.n, 10)), r.n >= lockAfter
}

func (s *server) loginSucceeded(ip string) {
	s.mu.Lock()
	delete(s.fails, ip)
	s.mu.Unlock()
}

// lockText is the 421 text for an address refused for d.
func lockText(d time.Duration) string {
	return "Too many failed logins from your address; try again in " + (d + time.Second - 1).Truncate(time.Second).String() + "."
}
