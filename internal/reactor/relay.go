package reactor

import "sync"

// Relay queues p on another connection, as to.WriteShared(p) would (p is
// kept, not copied, and must not change again). Called from a callback of
// this connection, it does not wake to's writer: when the callback
// returns, this goroutine writes everything the callback relayed to each
// connection with one writev, as far as its socket takes it without
// waiting, and hands only the rest to that connection's writer. A fan-out
// of a read holding ten frames to a thousand peers so costs a thousand
// system calls and no goroutine switch, where waking each writer would
// cost a thousand switches and up to ten thousand calls; Twisted's
// transports behave the same way, writing a callback's output once the
// reactor is back in its loop. Any other output for to waits behind the
// relayed bytes until then. A queue past half the high-water mark is
// written at once instead, so holding never brings a reading peer to its
// limits. Called from elsewhere, or with a transport the reactor did not
// make, Relay is to.WriteShared(p).
func (c *conn) Relay(to Transport, p []byte) (int, error) {
	b, ok := to.(*conn)
	if !ok || b == c || len(p) == 0 || !c.inCallback.Load() {
		return to.WriteShared(p)
	}
	n, held, queued, err := b.send(p, true, true)
	if err == nil && queued > b.cfg.highWater/2 {
		// Held on, a queue this long could reach the high-water mark or
		// the hard limit while the peer reads: written now instead, which
		// ends the hold whoever took it.
		b.release()
		return n, err
	}
	if !held {
		return n, err // held already (by this callback or another): released with it
	}
	r := c.relays()
	r.mu.Lock()
	if c.inCallback.Load() {
		r.held = append(r.held, b)
		r.mu.Unlock()
		return n, err
	}
	// The callback returned meanwhile (Relay called from another
	// goroutine): nothing will release b for it.
	r.mu.Unlock()
	b.release()
	return n, err
}

// relaySet is the connections a callback of this one relayed to, to be
// released when it returns; made at the first relay.
type relaySet struct {
	mu   sync.Mutex // a leaf: nothing else is locked while it is held
	held []*conn
	// rounds counts the reads whose relays wait for the next one (the
	// read loop's).
	rounds int
}

// maxRelayRounds bounds how many reads' worth of relayed output waits for
// the input behind it, so a sender that never pauses still has its
// messages delivered.
const maxRelayRounds = 8

func (c *conn) relays() *relaySet {
	if r := c.relay.Load(); r != nil {
		return r
	}
	c.relay.CompareAndSwap(nil, &relaySet{})
	return c.relay.Load()
}

// endCallback marks the end of a protocol callback and releases what it
// relayed; safely calls it, after a panic too. What DataReceived relayed
// waits while more input is already in the socket: the read that follows
// does not block, and what it relays to the same peers goes out in the
// same system call (a sender that writes ten messages one by one costs
// each peer one writev, not ten).
func (c *conn) endCallback() {
	r := c.relay.Load()
	if r == nil {
		c.inCallback.Store(false)
		return
	}
	r.mu.Lock()
	c.inCallback.Store(false)
	n := len(r.held)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	if c.relayOn && r.rounds < maxRelayRounds && c.inputWaiting() {
		r.rounds++
		return
	}
	c.releaseRelays()
}

// releaseRelays releases what earlier callbacks relayed and held; only
// the connection's read goroutine calls it, outside a callback, and before
// the connection goes dormant (after that another goroutine reads).
func (c *conn) releaseRelays() {
	r := c.relay.Load()
	if r == nil {
		return
	}
	r.mu.Lock()
	held := r.held
	r.mu.Unlock()
	r.rounds = 0
	if len(held) == 0 {
		return
	}
	for i, b := range held {
		b.release()
		held[i] = nil
	}
	// No relay appends until the next callback of this connection, which
	// runs on this goroutine after this one.
	r.mu.Lock()
	r.held = held[:0]
	r.mu.Unlock()
}

// release ends a relay's hold on c's queue: what is queued is written
// inline, unless the writer is busy (it would be reordered), and the
// writer is woken for what the socket did not take.
func (c *conn) release() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	o := c.out
	if o == nil || !o.held {
		return // the writer was told meanwhile (a close), or retired after writing it
	}
	o.held = false
	if len(o.wq) > 0 && !o.writing && !c.dead && c.raw != nil {
		n, err := c.writeQueueInline(o)
		if n > 0 {
			c.countSent(int64(n))
			if c.cfg.idleTimeout > 0 {
				c.touch()
			}
			c.wqBytes -= n
			// The writer's bookkeeping, with the whole queue as its batch.
			batch := o.wq
			o.wq = nil
			if spare := o.requeueLocked(batch, n); o.wq == nil {
				o.wq = spare // all of it went: the array stays the queue's
			}
			if c.wqBytes <= c.cfg.highWater/2 {
				c.setCongested(false)
			}
		}
		if err != nil {
			c.wmu.Unlock()
			c.AbortConnection()
			c.wmu.Lock()
			return
		}
	}
	if len(o.wq) > 0 || o.closeAfterFlush || o.writerStop {
		c.kickLocked(o)
	}
}

// writeQueueInline is one non-blocking writev of the head of the queue;
// wmu is held and the writer idle. It returns how much the kernel took.
func (c *conn) writeQueueInline(o *outQueue) (int, error) {
	op := rawOps.Get().(*rawOp)
	defer rawOps.Put(op)
	if op.iov.set(o.wq) == 0 {
		return 0, nil
	}
	werr := c.raw.Write(op.writev)
	n, err := op.n, op.err
	op.iov.reset()
	op.err = nil
	if werr != nil {
		return 0, nil // a deadline left from a flush, or closed: the writer sees
	}
	return n, err
}
