package reactor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Output queue bounds unless a Port sets its own.
const (
	// DefaultHighWater is the queued output past which a connection stops
	// reading its peer; it reads again once the queue is back to half of it.
	DefaultHighWater = 64 << 10
	// DefaultMaxQueued is the queued output past which a connection is
	// closed as a peer that does not read.
	DefaultMaxQueued = 1 << 20
)

// Queued output is copied into chunks from the buffer pools: small ones
// while little is queued, so a connection holding one short reply costs
// little, and large ones once a backlog builds, so writev gets few iovecs.
const (
	smallChunk = 4 << 10
	bigChunk   = 64 << 10
)

// ErrOutputQueueFull is the reason given to ConnectionLost (and returned by
// the Write that found it) when a connection was closed because its queued
// output passed the hard limit: the peer was not reading.
var ErrOutputQueueFull = errors.New("output queue full: peer not reading")

// outQueue is a connection's output that the socket did not take at once,
// waiting for the connection's writer goroutine, which is started at the
// first such write and parked on wake while the queue is empty. A writer
// parked for a whole sweep interval retires, and the queue with it, so a
// connection that was sent a broadcast an hour ago holds neither.
type outQueue struct {
	wq              []chunk
	iov             net.Buffers // the writer's, reused
	wake            sync.Cond   // L is the connection's wmu
	writerDone      chan struct{}
	writing         bool
	writerUp        bool
	writerStop      bool   // serve is ending: flush, then return
	closeAfterFlush bool   // LoseConnection came with output queued
	retire          bool   // the sweep found the writer parked and unused
	held            bool   // a relaying callback wakes the writer when it returns (relay.go)
	used            uint32 // the poller's sweep count at the last enqueue
	// The lingering close's progress (LoseConnection), once half-closed.
	lingerUnsent   int
	lingerProgress time.Time
}

// outq returns the output queue, making it; wmu is held.
func (c *conn) outq() *outQueue {
	if c.out == nil {
		c.out = &outQueue{}
		c.out.wake.L = &c.wmu
	}
	return c.out
}

// chunk is a piece of queued output: b is the unsent part of *bp, or of
// a caller's slice handed over by WriteShared when bp is nil.
type chunk struct {
	bp *[]byte
	b  []byte
}

func (ch chunk) release() {
	if ch.bp != nil {
		putBuf(ch.bp)
	}
}

// writeInline tries one non-blocking write of p on the socket, wmu held and
// the queue empty with no writer busy, so nothing can be written between.
// It returns how much the kernel took (0 when the socket cannot be written
// without waiting or cannot be asked: then p is queued); err is set when
// the connection is broken.
func (c *conn) writeInline(p []byte) (n int, err error) {
	op := rawOps.Get().(*rawOp)
	op.p = p
	werr := c.raw.Write(op.write)
	n, err = op.n, op.err
	op.p, op.err = nil, nil
	rawOps.Put(op)
	if werr != nil {
		// A deadline left from an earlier flush, or a closed socket: the
		// writer sorts it out (it resets the deadline, or sees the close).
		return 0, nil
	}
	return n, err
}

// rawOp is one read(2) or write(2) through a RawConn, with its arguments
// and results beside the callback; pooled, so neither a connection nor a
// call holds one of its own.
type rawOp struct {
	p       []byte
	n       int
	err     error
	write   func(fd uintptr) bool
	read    func(fd uintptr) bool
	control func(fd uintptr)      // sets n to the descriptor
	writev  func(fd uintptr) bool // writes iov; outq_linux.go
	inq     func(fd uintptr)      // sets n to the unread input
	iov     iovecs
}

var rawOps = sync.Pool{New: func() any {
	op := &rawOp{}
	op.write, op.read, op.control, op.writev, op.inq = op.doWrite, op.doRead, op.doControl, op.doWritev, op.doInq
	return op
}}

// doWrite is one write(2), never waiting for the socket to become
// writable: EAGAIN leaves n 0 and err nil.
func (op *rawOp) doWrite(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), op.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			op.n, op.err = 0, nil
		case err != nil:
			op.n, op.err = 0, err
		default:
			op.n, op.err = n, nil
		}
		return true
	}
}

func (op *rawOp) doControl(fd uintptr) { op.n = int(fd) }

// doRead is one read(2), never waiting in Go's netpoller: the caller parks.
func (op *rawOp) doRead(fd uintptr) bool {
	op.n, op.err = syscall.Read(int(fd), op.p)
	return true
}

// enqueueLocked copies p to the end of the queue, or with shared queues p
// itself; wmu is held.
func (c *conn) enqueueLocked(p []byte, shared bool) {
	o := c.outq()
	c.wqBytes += len(p)
	if pl := c.cfg.pl; pl != nil {
		o.used = pl.sweeps.Load()
	}
	if shared {
		// Capped, so no later copy is appended into the caller's array.
		o.wq = append(o.wq, chunk{b: p[:len(p):len(p)]})
		p = nil
	} else if k := len(o.wq); k > 0 {
		t := &o.wq[k-1]
		m := copy(t.b[len(t.b):cap(t.b)], p)
		t.b = t.b[:len(t.b)+m]
		p = p[m:]
	}
	for len(p) > 0 {
		size := smallChunk
		if len(p) > smallChunk || c.wqBytes > bigChunk {
			size = bigChunk
		}
		bp := getBuf(size)
		m := copy(*bp, p)
		o.wq = append(o.wq, chunk{bp: bp, b: (*bp)[:m]})
		p = p[m:]
	}
	if !o.held {
		c.kickLocked(o)
	}
}

// kickLocked starts the writer or wakes it; wmu is held.
func (c *conn) kickLocked(o *outQueue) {
	if !o.writerUp {
		o.writerUp = true
		o.writerDone = make(chan struct{})
		go c.writer(o)
	} else {
		o.retire = false
		o.wake.Broadcast() // the writer, or a StartTLS waiting for it
	}
}

// releaseLocked returns every queued chunk to its pool; wmu is held.
func (c *conn) releaseLocked() {
	c.wqBytes = 0
	o := c.out
	if o == nil {
		return
	}
	for i := range o.wq {
		o.wq[i].release()
	}
	clear(o.wq)
	o.wq = o.wq[:0]
}

// overflowLocked closes a connection whose queue would pass the hard limit
// with p; wmu is held and released.
func (c *conn) overflowLocked(p []byte) (int, error) {
	if errors.Is(c.lostReason, ErrOutputQueueFull) {
		// Another writer overflowed first and is closing: one line is enough.
		c.wmu.Unlock()
		return 0, ErrOutputQueueFull
	}
	dropped := c.wqBytes + len(p)
	c.lostReason = ErrOutputQueueFull
	// Closing before wmu is let go: another writer waiting on it would
	// overflow too and log the drop a second time.
	c.closing.Store(true)
	c.wmu.Unlock()
	c.logAttrs(slog.LevelWarn, fmt.Sprintf("outgoing queue full (%d bytes unsent, limit %d): closing the connection to %s, which is not reading; %d bytes dropped",
		dropped, c.cfg.maxQueued, peerName(c.nc), dropped))
	c.AbortConnection()
	return 0, ErrOutputQueueFull
}

// writer is the connection's writer goroutine, started at the first write
// the socket could not take at once and parked while the queue is empty.
// It hands everything queued to one writev, so a backlog of small writes
// costs one system call. It returns once the connection is dead, once the
// queue is empty after serve asked it to stop, or once the sweep retired
// it (then the queue goes too, and the next queued write starts another).
func (c *conn) writer(o *outQueue) {
	defer close(o.writerDone)
	var batch []chunk
	c.wmu.Lock()
	for {
		for len(o.wq) == 0 && !c.dead && !o.writerStop {
			if o.closeAfterFlush {
				o.closeAfterFlush = false
				c.closeGentlyLocked()
			}
			if o.retire && !c.closing.Load() {
				o.writerUp = false
				c.out = nil
				c.wmu.Unlock()
				return
			}
			o.wake.Wait()
		}
		if c.dead || len(o.wq) == 0 {
			c.releaseLocked()
			c.wmu.Unlock()
			return
		}
		batch, o.wq = o.wq, batch[:0]
		o.writing = true
		var w io.Writer = c.nc
		if c.tc != nil {
			w = c.tc
		}
		c.wmu.Unlock()
		n, err := c.flush(o, w, batch)
		c.wmu.Lock()
		o.writing = false
		if c.dead { // aborted meanwhile: the queue went with it
			for i := range batch {
				batch[i].release()
			}
			clear(batch)
			batch = batch[:0]
			continue
		}
		c.wqBytes -= n
		batch = o.requeueLocked(batch, n)
		if err != nil {
			c.wmu.Unlock()
			if errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load() {
				c.logAttrs(slog.LevelInfo, fmt.Sprintf("peer read nothing for %v: closing", c.cfg.writeTimeout))
			}
			c.AbortConnection()
			c.wmu.Lock()
			continue
		}
		if c.wqBytes <= c.cfg.highWater/2 {
			c.setCongested(false)
		}
		if c.wqBytes == 0 {
			o.wake.Broadcast() // a StartTLS may wait for the clear output
		}
	}
}

// retireIdle asks a writer parked since the sweep before the last to end;
// the port's sweep calls it.
func (c *conn) retireIdle(sweeps uint32) {
	c.wmu.Lock()
	if o := c.out; o != nil && o.writerUp && !o.writing && len(o.wq) == 0 && sweeps-o.used >= 2 {
		o.retire = true
		o.wake.Broadcast()
	}
	c.wmu.Unlock()
}

// requeueLocked releases the chunks of batch that were written whole (n
// bytes in all) and puts the rest back at the head of the queue; it
// returns batch emptied for reuse. wmu is held.
func (o *outQueue) requeueLocked(batch []chunk, n int) []chunk {
	i := 0
	for ; i < len(batch) && n >= len(batch[i].b); i++ {
		n -= len(batch[i].b)
		batch[i].release()
	}
	if i < len(batch) {
		batch[i].b = batch[i].b[n:]
		o.wq = append(batch[i:len(batch):len(batch)], o.wq...)
		// batch's array now backs the queue; start a fresh one.
		return nil
	}
	clear(batch)
	return batch[:0]
}

// flush writes batch to the socket (writev where the connection has it)
// and returns how many bytes went. The write timeout measures a queue
// making no progress: a writev that timed out after sending something is
// retried under a fresh deadline.
func (c *conn) flush(o *outQueue, w io.Writer, batch []chunk) (int, error) {
	bufs := o.iov[:0]
	for _, ch := range batch {
		bufs = append(bufs, ch.b)
	}
	o.iov = bufs[:0]
	defer clear(bufs[:cap(bufs)])
	total := 0
	for len(bufs) > 0 {
		timeout := c.cfg.writeTimeout
		if timeout <= 0 && c.closing.Load() {
			timeout = lingerTimeout // a closing connection must end
		}
		if timeout > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(timeout))
		}
		n, err := bufs.WriteTo(w)
		total += int(n)
		if n > 0 {
			c.countSent(n)
			if c.cfg.idleTimeout > 0 {
				c.touch()
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && n > 0 {
				continue
			}
			return total, err
		}
	}
	return total, nil
}

// setCongested records whether queued output is past the high-water mark;
// while it is, the read loop does not read.
func (c *conn) setCongested(on bool) {
	c.pmu.Lock()
	if c.congested != on {
		c.congested = on
		if !on {
			c.wakeLocked()
		} else if _, ok := c.proto.(FlowWatcher); ok && !c.closing.Load() {
			// A read in progress may wait long for a peer with nothing to
			// say; interrupt it so the protocol hears now.
			c.flowKick = true
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
	kick := c.flowKick
	c.pmu.Unlock()
	if kick {
		c.rouse() // a dormant loop tells the FlowWatcher too
	}
}

// takeFlowKick reports whether a read error was setCongested's
// interruption, and clears it.
func (c *conn) takeFlowKick(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.pmu.Lock()
	kicked := c.flowKick
	c.flowKick = false
	c.pmu.Unlock()
	if !kicked || c.closing.Load() {
		return false
	}
	c.nc.SetReadDeadline(time.Time{})
	return true
}

// stopWriter asks the writer to finish what is queued and waits for it;
// serve calls it before closing the socket, so a reply queued just before
// the peer's FIN still goes out. A peer that takes none of it for the write
// timeout (or lingerTimeout) is cut off by the writer's deadline.
func (c *conn) stopWriter() {
	c.wmu.Lock()
	c.closing.Store(true)
	var done chan struct{}
	if o := c.out; o != nil && (o.writerUp || len(o.wq) > 0) {
		// A relay's hold ends here: the writer flushes what it held.
		o.writerStop, o.held = true, false
		c.kickLocked(o)
		done = o.writerDone
	}
	if c.wqBytes > 0 && c.cfg.writeTimeout <= 0 {
		c.nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
	}
	c.wmu.Unlock()
	if done != nil {
		<-done
	}
}

// queuedBytes returns the output not yet taken by the kernel.
func (c *conn) queuedBytes() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.wqBytes
}
