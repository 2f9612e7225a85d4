package reactor

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
)

// Go runs f in a goroutine the connection owns (CockroachDB's stopper
// tasks, given to a protocol through its transport). f's ctx is cancelled
// when the connection closes; a panic in f is logged with its stack and
// aborts this connection only; ConnectionLost runs after every such
// goroutine has returned, so f must end soon after ctx is done. Once the
// connection is closing, Go runs nothing and returns false.
func (c *conn) Go(f func(ctx context.Context)) bool {
	c.pmu.Lock()
	if c.jobsDone {
		c.pmu.Unlock()
		return false
	}
	j := &c.auxLocked().jobs
	if j.ctx == nil {
		j.ctx, j.stop = context.WithCancel(context.Background())
	}
	j.wg.Add(1)
	c.pmu.Unlock()
	go func() {
		defer j.wg.Done()
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
		f(j.ctx)
	}()
	return true
}

// jobSet is the goroutines a connection started with Go.
type jobSet struct {
	wg   sync.WaitGroup
	ctx  context.Context // nil until the first
	stop context.CancelFunc
}

// connAux is the part of a connection few need, made when first needed.
type connAux struct {
	jobs   jobSet
	resume sync.Cond // pause and congestion waits; L is &pmu
}

// auxLocked returns the connection's connAux, making it; pmu is held.
func (c *conn) auxLocked() *connAux {
	if c.aux == nil {
		c.aux = &connAux{}
		c.aux.resume.L = &c.pmu
	}
	return c.aux
}

// endJobs refuses new goroutines, cancels the running ones and waits for
// them; serve calls it after the socket closed, before ConnectionLost.
func (c *conn) endJobs() {
	c.pmu.Lock()
	c.jobsDone = true
	var j *jobSet
	if c.aux != nil && c.aux.jobs.ctx != nil {
		j = &c.aux.jobs
	}
	c.pmu.Unlock()
	if j != nil {
		j.stop()
		j.wg.Wait()
	}
}
