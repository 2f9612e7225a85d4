package reactor

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// A port's idle timeout is one LoopingCall on the port's clock that looks
// at every connection's last-activity stamp, not a timer per connection:
// a server holding a hundred thousand quiet clients keeps one timer, and
// a read or write only stores a timestamp.

// idleEnded is the stamp of a connection that ended: never idle.
const idleEnded = math.MaxInt64

// minIdleSweep bounds how often a port with a very short idle timeout
// sweeps.
const minIdleSweep = 10 * time.Millisecond

// idleSweepInterval is how often a port with idle timeout d sweeps: a
// connection closes between d and d+d/8 of silence.
func idleSweepInterval(d time.Duration) time.Duration { return max(d/8, minIdleSweep) }

// touch records activity for the idle timeout.
func (c *conn) touch() { c.last.Store(c.cfg.clock.Now().UnixNano()) }

// startIdleSweep starts the port's idle sweep, if it has an idle timeout;
// p.mu is held and p.cfg is final.
func (p *Port) startIdleSweep() {
	if p.cfg.idleTimeout <= 0 {
		return
	}
	p.idleSweep = NewLoopingCall(p.cfg.clock, p.sweepIdle)
	p.idleSweep.Start(idleSweepInterval(p.cfg.idleTimeout), false)
}

// sweepIdle closes the connections silent for the whole idle timeout. It
// collects them under p.mu and closes them after: a close may end a
// connection, and its end takes p.mu.
func (p *Port) sweepIdle() {
	now := p.cfg.clock.Now().UnixNano()
	limit := int64(p.cfg.idleTimeout)
	var idle []*conn
	p.mu.Lock()
	for c := range p.conns {
		if now-c.last.Load() >= limit && !c.closing.Load() {
			idle = append(idle, c)
		}
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeIdle()
	}
}

// closeIdle closes a connection the sweep found idle.
func (c *conn) closeIdle() {
	if c.last.Load() == idleEnded || c.closing.Load() {
		return // ended since the sweep looked
	}
	c.logAttrs(slog.LevelInfo, fmt.Sprintf("no traffic for %v: closing idle connection", c.cfg.idleTimeout))
	// Output still queued after a whole timeout without a byte moving is
	// going nowhere: close hard rather than flush.
	if c.queuedBytes() > 0 {
		c.AbortConnection()
		return
	}
	c.LoseConnection()
}
