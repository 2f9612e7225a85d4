package reactor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// After LoseConnection shuts down our side, the socket stays open until the
// peer closes its side, or the peer has acknowledged everything we wrote
// (checked every lingerPoll), or delivery made no progress for
// lingerTimeout (a peer that stopped reading). Closing while a slow reader
// is still receiving would reset the connection and lose what it was
// promised.
const (
	lingerTimeout = 5 * time.Second
	lingerPoll    = 250 * time.Millisecond
	lingerBufSize = 512
)

// bufPools hold read buffers by size, so a connection costs no buffer
// allocation once the pool is warm.
var bufPools sync.Map // int -> *sync.Pool of *[]byte

func getBuf(size int) *[]byte {
	// Load first: building the pool LoadOrStore might store would cost an
	// allocation on every call, and the output queue calls this per chunk.
	pool, ok := bufPools.Load(size)
	if !ok {
		pool, _ = bufPools.LoadOrStore(size, &sync.Pool{New: func() any {
			b := make([]byte, size)
			return &b
		}})
	}
	return pool.(*sync.Pool).Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if pool, ok := bufPools.Load(len(*b)); ok {
		pool.(*sync.Pool).Put(b)
	}
}

// errPanic marks a connection closed because its protocol panicked.
var errPanic = errors.New("protocol handler panicked")

// conn is the Transport of one connection; its serve method is the
// connection's goroutine. An idle chat server holds tens of thousands of
// these, so it keeps only what a connection waiting for input needs: the
// port's settings are shared (cfg), and the writer's queue, the jobs and
// the pause condition are allocated when first used; the idle timeout is
// a timestamp here and one sweep for the whole port (idle.go).
type conn struct {
	nc    net.Conn
	proto Protocol
	cfg   *connConfig // the port's, or the client service's
	// raw writes inline and reads without waiting; nil when the
	// connection has no descriptor, or speaks TLS.
	raw syscall.RawConn
	// tc is the TLS connection over nc after StartTLS: from then on the
	// read loop reads it and the writer writes it.
	tc *tls.Conn
	// out is the output queue (outqueue.go), under wmu; nil until output
	// first had to wait.
	out *outQueue

	wmu     sync.Mutex // guards the output queue and the half-close after it
	pmu     sync.Mutex
	closing atomic.Bool
	// inCallback is set while a protocol callback runs: a Write then most
	// likely comes from the connection's own goroutine (a reply, an echo)
	// and is written inline. Writes from elsewhere (a fan-out, a timer, a
	// job) go to the writer, so a sender to a thousand peers hands over a
	// thousand queued frames instead of making a thousand system calls,
	// and the writers coalesce what piles up meanwhile.
	inCallback atomic.Bool
	// heard is the poller's sweep count at the last input; waiting is set
	// while the loop waits in the netpoller instead (dormant.go).
	heard   atomic.Uint32
	waiting atomic.Bool
	// heardBefore is heard as it was before the last input (loop only).
	heardBefore uint32
	// owed is the input the peer sent before a stop request (-1: not
	// measured); the read loop's.
	owed int32

	// Under wmu.
	dead     bool // aborted or failed: queued output is dropped
	lingered bool // closeGentlyLocked half-closed: the read loop lingers
	// Under pmu.
	paused    bool
	congested bool // queued output past the high-water mark
	flowKick  bool // the read was interrupted to tell a FlowWatcher
	stopReq   bool // a graceful stop asked to interrupt the read
	stopAsked bool // requestStop ran; StopRequested is owed at most once
	quietKick bool // the sweep interrupted a netpoller wait
	noPoll    bool // the poller failed this connection: read with a goroutine
	jobsDone  bool // Go runs nothing more
	// The read loop's.
	saidSlow bool // FlowWatcher was told PeerSlow
	drained  bool // the last non-blocking read emptied the socket
	// relayOn is set while DataReceived runs: what it relays may wait
	// for the input already in the socket (relay.go).
	relayOn bool

	wqBytes    int   // queued, including what the writer is writing; under wmu
	lostReason error // under wmu
	// The read loop's state, kept here so the loop can end its goroutine
	// while the connection waits in the poller and go on in another.
	rb readBuf
	// tok is the poller's token for this connection while dormant (0: not
	// armed); under pmu.
	tok uint64

	sent, recv atomic.Int64
	start      int64 // when the port served it (UnixNano), for the duration metric
	// seq is N in the "System,N,peer" tag of the connection's log lines.
	seq uint64

	// aux is what few connections need (jobs.go): Go's goroutines and the
	// pause condition; made under pmu.
	aux *connAux
	// relay is what a callback relayed to other connections (relay.go).
	relay atomic.Pointer[relaySet]
	// last is the clock time (UnixNano) of the last byte either way, for
	// the idle timeout only; idleEnded once the connection ended.
	last atomic.Int64
}

// connConfig holds the settings a Port or ClientService passes on, shared
// by its connections.
type connConfig struct {
	bufSize      int           // the read buffer's initial and smallest size
	maxBufSize   int           // how far it may grow (at most bufSize: fixed)
	idleTimeout  time.Duration // 0: none
	writeTimeout time.Duration // 0: none
	highWater    int           // 0: DefaultHighWater
	maxQueued    int           // 0: DefaultMaxQueued
	clock        Clock
	metrics      *PortMetrics // nil: not counted
	log          *slog.Logger
	// system tags the connections' log lines "System,N,peer"; with system
	// empty, lines go out as log has them. The tag is put on each record
	// rather than into a derived logger, which would copy the handler for
	// a connection that logs only once, when it ends.
	system string
	pl     *poller // nil: the read loop blocks in Read
	port   *Port   // told when a connection ends; nil for a client
	// made, if set, runs on the connection's goroutine right after
	// ConnectionMade returns normally.
	made func(*conn)
}

// normalize fills in the defaults.
func (cfg *connConfig) normalize() {
	if cfg.bufSize <= 0 {
		cfg.bufSize = DefaultReadBufferSize
	}
	if cfg.maxBufSize == 0 {
		cfg.maxBufSize = max(DefaultMaxReadBufferSize, cfg.bufSize)
	}
	if cfg.highWater <= 0 {
		cfg.highWater = DefaultHighWater
	}
	if cfg.maxQueued <= 0 {
		cfg.maxQueued = DefaultMaxQueued
	}
	cfg.clock = orReal(cfg.clock)
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
}

// logAttrs writes one log line tagged with the connection's system.
func (c *conn) logAttrs(level slog.Level, msg string, attrs ...slog.Attr) {
	h := c.cfg.log.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	// A record without a PC: slog's Logger would walk the stack for the
	// caller on every line, which no sink here prints.
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	if c.cfg.system != "" {
		b := make([]byte, 0, len(c.cfg.system)+64)
		b = append(b, c.cfg.system...)
		b = append(b, ',')
		b = strconv.AppendUint(b, c.seq, 10)
		b = append(b, ',')
		b = appendPeer(b, c.nc)
		// b is never written again, so the string may share it: one
		// allocation per tag instead of two.
		r.AddAttrs(slog.String(systemKey, unsafe.String(unsafe.SliceData(b), len(b))))
	}
	h.Handle(context.Background(), r)
}

// newConn returns the connection over nc; cfg is normalized and shared.
func newConn(nc net.Conn, proto Protocol, cfg *connConfig) *conn {
	c := &conn{nc: nc, proto: proto, cfg: cfg}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// serve runs the connection until it closes, or until it waits for input
// in the port's poller with no goroutine (then a later goroutine goes on
// with run). It never panics.
func (c *conn) serve() {
	if !c.safely(func() { c.proto.ConnectionMade(c) }) {
		c.end(errPanic)
		return
	}
	if c.cfg.made != nil {
		c.cfg.made(c)
	}
	// A protocol that already closed (a poem sent whole) only reads to
	// discard until the peer's FIN; a small buffer does for that.
	c.rb = readBuf{floor: int32(c.cfg.bufSize), max: int32(max(c.cfg.bufSize, c.cfg.maxBufSize))}
	if c.closing.Load() {
		c.rb.floor, c.rb.max = lingerBufSize, lingerBufSize
	}
	c.owed = -1
	c.run()
}

// run is the read loop: it reads and hands input to the protocol until the
// connection ends (then it tears down) or goes dormant in the poller.
func (c *conn) run() {
	if reason, ended := c.readLoop(); ended {
		c.releaseRelays() // no next read to wait for
		c.end(reason)
	}
}

// end tears the connection down: it runs once, on the goroutine that saw
// the connection end.
func (c *conn) end(reason error) {
	if c.rb.bp != nil {
		putBuf(c.rb.bp)
		c.rb.bp = nil
	}
	c.stopWriter()
	c.nc.Close()
	c.last.Store(idleEnded) // after the last byte could move, so no touch undoes it
	c.endJobs()
	c.wmu.Lock()
	if c.lostReason != nil {
		reason = c.lostReason
	}
	c.wmu.Unlock()
	c.safely(func() { c.proto.ConnectionLost(reason) })
	c.logAttrs(slog.LevelInfo, "connection closed", slog.Int64("sent", c.sent.Load()), slog.Int64("received", c.recv.Load()))
	if p := c.cfg.port; p != nil {
		p.ended(c)
	}
}

// readLoop reports why the connection ended, or ended false when it went dormant.
func (c *conn) readLoop() (reason error, ended bool) {
	fw, _ := c.proto.(FlowWatcher)
	for {
		if c.rb.bp == nil {
			c.rb.bp = getBuf(c.rb.size())
		}
		buf := *c.rb.bp
		limit := len(buf)
		if fw != nil && !c.noteFlow(fw) {
			return errPanic, true
		}
		stop, paused := c.waitResumed()
		if fw != nil && !c.noteFlow(fw) {
			return errPanic, true
		}
		if stop {
			// Bytes the kernel already took from the peer are handed to the
			// protocol before StopRequested, so a shutdown never drops a
			// request that arrived in time. Only those: a peer that keeps
			// sending cannot hold the stop off.
			if c.owed < 0 {
				c.owed = 0
				if !paused && !c.closing.Load() {
					c.owed = int32(max(unreadBytes(c.nc), 0))
				}
			}
			if c.owed == 0 || c.closing.Load() {
				c.owed = -1
				if !c.safely(c.deliverStop) {
					return errPanic, true
				}
				continue
			}
			c.nc.SetReadDeadline(time.Time{})
			limit = min(limit, int(c.owed))
		}
		var n int
		var err error
		if c.pollable() && !stop && !c.closing.Load() && c.sparse() {
			// A read that left the socket empty needs no second one to
			// hear EAGAIN: the arming is level-triggered, so bytes that
			// came meanwhile wake the connection at once.
			if c.drained {
				c.drained = false
				c.releaseRelays()
				if c.goDormant() {
					return nil, false
				}
			}
			n, err = c.readNow(buf[:limit])
			if err == errWouldBlock {
				c.releaseRelays()
				if c.goDormant() {
					return nil, false
				}
				continue
			}
			c.drained = err == nil && n > 0 && n < limit
		} else if c.pollable() {
			// Input came lately: wait in the netpoller, which costs less
			// per message than a trip through the poller, until the sweep
			// finds the connection quiet.
			c.waiting.Store(true)
			n, err = c.nc.Read(buf[:limit])
			c.waiting.Store(false)
		} else if c.tc != nil {
			n, err = c.tc.Read(buf[:limit])
		} else {
			n, err = c.nc.Read(buf[:limit])
		}
		if c.owed > 0 {
			c.owed -= int32(n)
		}
		if n > 0 {
			if pl := c.cfg.pl; pl != nil {
				c.heardBefore = c.heard.Load()
				c.heard.Store(pl.sweeps.Load())
			}
			c.recv.Add(int64(n))
			if m := c.cfg.metrics; m != nil {
				m.Received.Add(float64(n))
			}
			if c.cfg.idleTimeout > 0 {
				c.touch()
			}
			if !c.closing.Load() {
				c.relayOn = !stop && c.tc == nil
				ok := c.safely(func() { c.proto.DataReceived(buf[:n]) })
				c.relayOn = false
				if !ok {
					return errPanic, true
				}
			}
			c.rb.fit(n)
		}
		if err != nil {
			if c.takeStopRequest(err) || c.keepLingering(err) || c.takeFlowKick(err) || c.takeQuietKick(err) {
				continue
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !c.closing.Load() {
				reason = err
			}
			return reason, true
		}
	}
}

// safely runs a protocol callback, turning a panic into a logged stack and
// an aborted connection. It reports whether f returned normally.
func (c *conn) safely(f func()) (ok bool) {
	c.inCallback.Store(true)
	defer func() {
		c.endCallback()
		if r := recover(); r != nil {
			c.logAttrs(slog.LevelError, fmt.Sprintf("panic in protocol: %v\n%s", r, debug.Stack()))
			c.AbortConnection()
			ok = false
		}
	}()
	f()
	return true
}

// waitResumed blocks while reading is paused, by the protocol or by
// queued output past the high-water mark. It reports whether a graceful
// stop request is pending and must be delivered first, and whether reading
// is still paused (a stop request ends the wait either way).
func (c *conn) waitResumed() (stop, paused bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if (c.paused || c.congested) && !c.stopReq {
		// Not reading for a while: what the last reads relayed goes now.
		c.pmu.Unlock()
		c.releaseRelays()
		c.pmu.Lock()
	}
	for (c.paused || c.congested) && !c.stopReq {
		c.auxLocked().resume.Wait()
	}
	return c.stopReq, c.paused || c.congested
}

// noteFlow tells a FlowWatcher protocol that its peer fell behind or
// caught up since it was last told, on the connection's goroutine. It
// reports false if the callback panicked.
func (c *conn) noteFlow(fw FlowWatcher) bool {
	c.pmu.Lock()
	slow := c.congested
	c.pmu.Unlock()
	if slow == c.saidSlow {
		return true
	}
	c.saidSlow = slow
	if slow {
		return c.safely(fw.PeerSlow)
	}
	return c.safely(fw.PeerCaughtUp)
}

// requestStop interrupts the read so StopRequested runs on the connection's
// goroutine.
func (c *conn) requestStop() {
	if _, ok := c.proto.(StopRequester); !ok {
		return
	}
	c.pmu.Lock()
	if c.stopAsked {
		c.pmu.Unlock()
		return
	}
	c.stopAsked, c.stopReq = true, true
	c.wakeLocked()
	// Under pmu, so takeQuietKick never clears this deadline unseen.
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.pmu.Unlock()
	c.rouse()
}

// takeStopRequest reports whether a read error was our own interruption.
func (c *conn) takeStopRequest(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.pmu.Lock()
	pending := c.stopReq
	c.pmu.Unlock()
	return pending && !c.closing.Load()
}

func (c *conn) deliverStop() {
	c.pmu.Lock()
	c.stopReq = false
	c.pmu.Unlock()
	if !c.closing.Load() {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.proto.(StopRequester).StopRequested()
}

// Write queues p and returns without waiting for the peer. When nothing is
// queued and a callback of this connection is running, the bytes go
// straight to the socket, as far as it takes them; the rest is copied to
// the queue for the writer.
func (c *conn) Write(p []byte) (int, error) { return c.write(p, false) }

// countSent counts n bytes the socket took, for the transport and the
// port's metrics.
func (c *conn) countSent(n int64) {
	c.sent.Add(n)
	if m := c.cfg.metrics; m != nil {
		m.Sent.Add(float64(n))
	}
}

// WriteShared is Write without the copy: what the socket does not take at
// once stays in p until it is sent.
func (c *conn) WriteShared(p []byte) (int, error) { return c.write(p, true) }

func (c *conn) write(p []byte, shared bool) (int, error) {
	n, _, _, err := c.send(p, shared, false)
	return n, err
}

// send is Write, WriteShared and a relay's hold (relay.go): with hold the
// bytes are queued without waking the writer, held reports whether the
// queue was not held already, so the caller owes a release, and queued is
// what the queue then holds.
func (c *conn) send(p []byte, shared, hold bool) (n int, held bool, queued int, err error) {
	c.wmu.Lock()
	if c.closing.Load() {
		c.wmu.Unlock()
		return 0, false, 0, net.ErrClosed
	}
	total := len(p)
	if c.wqBytes == 0 && c.raw != nil && len(p) > 0 && !hold && c.inCallback.Load() {
		n, err := c.writeInline(p)
		if n > 0 {
			c.countSent(int64(n))
			if c.cfg.idleTimeout > 0 {
				c.touch()
			}
		}
		if err != nil {
			c.wmu.Unlock()
			c.AbortConnection()
			return n, false, 0, err
		}
		p = p[n:]
	}
	if len(p) == 0 {
		c.wmu.Unlock()
		return total, false, 0, nil
	}
	// One write is queued whole whatever its size; output piling up
	// behind earlier output is the mark of a peer not reading.
	if c.wqBytes > 0 && c.wqBytes+len(p) > c.cfg.maxQueued {
		n, err := c.overflowLocked(p)
		return n, false, 0, err
	}
	if hold {
		o := c.outq()
		held, o.held = !o.held, true
	}
	c.enqueueLocked(p, shared)
	if c.wqBytes > c.cfg.highWater {
		c.setCongested(true)
	}
	queued = c.wqBytes
	c.wmu.Unlock()
	return total, held, queued, nil
}

// LoseConnection refuses further writes, lets the writer flush what is
// queued, then closes gently.
func (c *conn) LoseConnection() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Swap(true) {
		return
	}
	c.rouse() // the read loop lingers or ends
	c.ResumeProducing()
	if c.wqBytes > 0 {
		c.out.closeAfterFlush = true
		if c.cfg.writeTimeout <= 0 {
			// A flush that makes no progress for this long is given up.
			c.nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
		}
		c.out.held = false // a relay's hold ends with the connection
		c.kickLocked(c.out)
		return
	}
	c.closeGentlyLocked()
}

// closeGentlyLocked closes a connection with nothing left queued; wmu is
// held.
func (c *conn) closeGentlyLocked() {
	// Lingering only protects data still on its way and input that would
	// turn the close into a reset (nginx's "lingering_close auto"); a peer
	// that already holds every byte is closed at once, which is the common
	// case for a short reply on a fast link.
	if settled(c.nc) {
		c.nc.Close()
		return
	}
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		// The read loop keeps going (discarding) until the peer's FIN or
		// keepLingering gives up.
		o := c.outq()
		o.lingerProgress = time.Now()
		o.lingerUnsent = -1
		c.lingered = true
		c.nc.SetReadDeadline(time.Now().Add(lingerPoll))
		return
	}
	c.nc.Close()
}

// keepLingering is called on the read goroutine when a read fails; it
// reports whether the failure was a linger poll after which the connection
// should stay open.
func (c *conn) keepLingering(err error) bool {
	if !c.closing.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.wmu.Lock()
	lingered := c.lingered
	c.wmu.Unlock()
	if !lingered {
		return false
	}
	now := time.Now()
	unsent := unsentBytes(c.nc)
	if unsent == 0 {
		return false
	}
	c.wmu.Lock()
	o := c.out
	if unsent != o.lingerUnsent {
		o.lingerUnsent = unsent
		o.lingerProgress = now
	}
	stalled := now.Sub(o.lingerProgress) >= lingerTimeout
	c.wmu.Unlock()
	if stalled {
		return false
	}
	c.nc.SetReadDeadline(now.Add(lingerPoll))
	return true
}

func (c *conn) AbortConnection() {
	c.closing.Store(true)
	c.rouse() // before the close below: see rouse
	c.wmu.Lock()
	c.dead = true
	c.releaseLocked()
	if c.out != nil {
		c.out.wake.Broadcast()
	}
	c.wmu.Unlock()
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.nc.Close()
	c.setCongested(false)
	c.ResumeProducing()
}

func (c *conn) PauseProducing() {
	c.pmu.Lock()
	c.paused = true
	c.pmu.Unlock()
}

func (c *conn) ResumeProducing() {
	c.pmu.Lock()
	c.paused = false
	c.wakeLocked()
	c.pmu.Unlock()
}

// wakeLocked wakes a read loop waiting in waitResumed; pmu is held.
func (c *conn) wakeLocked() {
	if c.aux != nil {
		c.aux.resume.Broadcast()
	}
}

func (c *conn) LocalAddr() net.Addr  { return c.nc.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// isTemporary reports accept errors worth retrying (fd exhaustion, aborted
// handshakes) as opposed to a closed listener.
func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM)
}
