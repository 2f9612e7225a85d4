package reactor

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Go runs f in a goroutine the connection owns (CockroachDB's stopper
// tasks, given to a protocol through its transport). f's ctx is cancelled
// when the connection closes; a panic in f is logged with its stack and
// aborts this connection only; ConnectionLost runs after every such
// goroutine has returned, so f must end soon after ctx is done. Once the
// connection is closing, Go runs nothing and returns false.
func (c *conn) Go(f func(ctx context.Context)) bool {
	c.jmu.Lock()
	if c.jobsDone {
		c.jmu.Unlock()
		return false
	}
	if c.jobCtx == nil {
		c.jobCtx, c.jobStop = context.WithCancel(context.Background())
	}
	ctx := c.jobCtx
	c.jobs.Add(1)
	c.jmu.Unlock()
	go func() {
		defer c.jobs.Done()
		defer func() {
			if r := recover(); r != nil {
				c.logAttrs(slog.LevelError, fmt.Sprintf("panic in a goroutine of the connection: %v\n%s", r, debug.Stack()))
				c.wmu.Lock()
				if c.lostReason == nil {
					c.lostReason = errPanic
				}
				c.wmu.Unlock()
				c.AbortConnection()
			}
		}()
		f(ctx)
	}()
	return true
}

// endJobs refuses new goroutines, cancels the running ones and waits for
// them; serve calls it after the socket closed, before ConnectionLost.
func (c *conn) endJobs() {
	c.jmu.Lock()
	c.jobsDone = true
	stop := c.jobStop
	c.jmu.Unlock()
	if stop != nil {
		stop()
	}
	c.jobs.Wait()
}
