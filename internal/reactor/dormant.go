package reactor

import (
	"errors"
	"log/slog"
	"os"
	"time"
)

// quietTick is how often a port's sweep looks for connections waiting in
// the netpoller with no input since the sweep before; it interrupts their
// wait so they go dormant. A connection that hears from its peer more
// often (a ping-pong, a stream) keeps its goroutine: a trip through the
// poller costs more than a netpoller wait.
const quietTick = 100 * time.Millisecond

// errWouldBlock is readNow's "nothing to read now".
var errWouldBlock = errors.New("read would block")

// pollable reports whether the read loop may go dormant in the poller instead of
// blocking in Read: a plain socket of a port with a poller. TLS keeps its
// goroutine, since crypto/tls reads through the blocking net.Conn.
func (c *conn) pollable() bool { return c.cfg.pl != nil && !c.noPoll && c.raw != nil }

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
	tok, err := c.cfg.pl.arm(c.raw, c)
	if err != nil {
		c.logAttrs(slog.LevelWarn, "poller: "+err.Error()+"; reading with a goroutine from now on")
		c.noPoll = true
		return false
	}
	c.tok = tok
	c.rb.cur = int32(len(*c.rb.bp))
	putBuf(c.rb.bp)
	c.rb.bp = nil
	return true
}

// wakeUp is the poller's call when a dormant connection's socket is
// readable: the read loop goes on in the poller's fresh goroutine.
func (c *conn) wakeUp() {
	c.pmu.Lock()
	c.tok = 0
	c.pmu.Unlock()
	c.run()
}

// rouse starts the read loop of a dormant connection, so it sees a stop
// request, a close or a congested queue; it must come after the flag it
// is woken for was set. If the poller already fired, its goroutine runs
// the loop instead. A connection that is not dormant is left alone.
func (c *conn) rouse() {
	c.pmu.Lock()
	tok := c.tok
	c.tok = 0
	c.pmu.Unlock()
	// A true cancel took the socket out of the epoll set, so a close after
	// rouse never leaves an entry for a descriptor number reused later.
	if tok != 0 && c.cfg.pl.cancel(tok) {
		go c.run()
	}
}

// quiet reports whether no input came since the sweep before the last.
func (c *conn) quiet() bool { return c.cfg.pl.sweeps.Load()-c.heard.Load() >= 2 }

// sparse reports whether the read loop goes dormant as soon as the socket
// is empty: it is quiet, or its last two inputs came a sweep interval or
// more apart (a heartbeat), so its next one is not expected soon.
func (c *conn) sparse() bool {
	return c.quiet() || c.cfg.pl.sweeps.Load()-c.heardBefore >= 2
}

// kickQuiet interrupts a netpoller wait with no input for a whole sweep
// interval, so the read loop goes dormant; the port's sweep calls it.
func (c *conn) kickQuiet() {
	if !c.waiting.Load() || !c.quiet() || c.closing.Load() {
		return
	}
	c.pmu.Lock()
	if !c.quietKick && !c.stopReq && !c.flowKick && !c.paused && !c.congested {
		c.quietKick = true
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.pmu.Unlock()
}

// takeQuietKick reports whether a read error was kickQuiet's interruption.
func (c *conn) takeQuietKick(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	// Lingering sets a deadline of its own, not to be cleared; wmu before
	// pmu, the order setCongested takes them in.
	lingering := false
	if c.closing.Load() {
		c.wmu.Lock()
		lingering = c.lingered
		c.wmu.Unlock()
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.quietKick {
		return false
	}
	c.quietKick = false
	if !c.stopReq && !c.flowKick && !lingering {
		c.nc.SetReadDeadline(time.Time{}) // else theirs: the loop sees their flag
	}
	return true
}

// sweep counts a quietTick and interrupts the netpoller waits of quiet
// connections; it re-arms itself until the port stops.
func (p *Port) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweeper == nil {
		return // stopped
	}
	n := p.cfg.pl.sweeps.Add(1)
	for c := range p.conns {
		c.kickQuiet()
		c.retireIdle(n)
	}
	p.sweeper.Reset(quietTick)
}
