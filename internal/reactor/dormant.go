package reactor

import (
	"errors"
	"log/slog"
)

// errWouldBlock is readNow's "nothing to read now".
var errWouldBlock = errors.New("read would block")

// pollable reports whether the read loop may go dormant in the poller instead of
// blocking in Read: a plain socket of a port with a poller. TLS keeps its
// goroutine, since crypto/tls reads through the blocking net.Conn.
func (c *conn) pollable() bool { return c.pl != nil && !c.tls && c.raw != nil }

// goDormant hands the connection to the poller when nothing asks the read loop
// to go on: its read buffer goes back to the pool and its goroutine may
// end. It reports false when the loop must go on instead.
func (c *conn) goDormant() bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.paused || c.congested || c.stopReq || c.flowKick || c.closing.Load() {
		return false
	}
	// arm is called under pmu so a wake-up (which takes pmu first) finds
	// cancel set for this arming, never an older one.
	cancel, err := c.pl.arm(c.raw, c.wake)
	if err != nil {
		c.logAttrs(slog.LevelWarn, "poller: "+err.Error()+"; reading with a goroutine from now on")
		c.pl = nil
		return false
	}
	c.cancel = cancel
	c.rb.cur = len(*c.rb.bp)
	putBuf(c.rb.bp)
	c.rb.bp = nil
	return true
}

// wake is the poller's call when a dormant connection's socket is readable:
// the read loop goes on in the poller's fresh goroutine.
func (c *conn) wake() {
	c.pmu.Lock()
	c.cancel = nil
	c.pmu.Unlock()
	c.run()
}

// rouse starts the read loop of a dormant connection, so it sees a stop
// request, a close or a congested queue; it must come after the flag it
// is woken for was set. If the poller already fired, its goroutine runs
// the loop instead. A connection that is not dormant is left alone.
func (c *conn) rouse() {
	c.pmu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.pmu.Unlock()
	// A true cancel took the socket out of the epoll set, so a close after
	// rouse never leaves an entry for a descriptor number reused later.
	if cancel != nil && cancel() {
		go c.run()
	}
}
