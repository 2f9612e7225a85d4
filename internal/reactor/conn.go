package reactor

import (
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
)

// errPanic marks a connection closed because its protocol panicked.
var errPanic = errors.New("protocol handler panicked")

// conn is the Transport of one connection; its serve method is the
// connection's goroutine.
type conn struct {
	nc     net.Conn
	proto  Protocol
	log    *slog.Logger // the port's; lines about this connection add tag()
	system string       // the port's System
	seq    uint64

	wmu     sync.Mutex // serialises writes and the half-close after them
	closing atomic.Bool

	pmu     sync.Mutex
	pcond   *sync.Cond
	paused  bool
	stopReq bool // a graceful stop asked to interrupt the read

	sent, recv atomic.Int64

	// linger state, used only by the read goroutine after LoseConnection.
	lingerUnsent   int
	lingerProgress time.Time
}

func newConn(nc net.Conn, proto Protocol, log *slog.Logger, system string, seq uint64) *conn {
	c := &conn{nc: nc, proto: proto, log: log, system: system, seq: seq}
	c.pcond = sync.NewCond(&c.pmu)
	return c
}

// tag is the connection's log system, "System,N,peer" as in twistd. It is
// built only when a line is logged, off the accept path.
func (c *conn) tag() string {
	peer := c.nc.RemoteAddr().String()
	if peer == "" || peer == "@" {
		peer = "unix"
	}
	return c.system + "," + strconv.FormatUint(c.seq, 10) + "," + peer
}

// bufPools hold read buffers by size, so a connection costs no buffer
// allocation once the pool is warm.
var bufPools sync.Map // int -> *sync.Pool of *[]byte

func getBuf(size int) *[]byte {
	pool, _ := bufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return pool.(*sync.Pool).Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if pool, ok := bufPools.Load(len(*b)); ok {
		pool.(*sync.Pool).Put(b)
	}
}

// serve runs the connection until it closes. It never panics.
func (c *conn) serve(bufSize int) {
	var reason error
	bp := getBuf(bufSize)
	defer func() {
		putBuf(bp)
		c.nc.Close()
		c.safely(func() { c.proto.ConnectionLost(reason) })
		c.log.Info("connection closed", "system", c.tag(), "sent", c.sent.Load(), "received", c.recv.Load())
	}()
	if !c.safely(func() { c.proto.ConnectionMade(c) }) {
		reason = errPanic
		return
	}
	buf := *bp
	for {
		if c.waitResumed() {
			if !c.safely(c.deliverStop) {
				reason = errPanic
				return
			}
			continue
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.recv.Add(int64(n))
			if !c.closing.Load() && !c.safely(func() { c.proto.DataReceived(buf[:n]) }) {
				reason = errPanic
				return
			}
		}
		if err != nil {
			if c.takeStopRequest(err) || c.keepLingering(err) {
				continue
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !c.closing.Load() {
				reason = err
			}
			return
		}
	}
}

// safely runs a protocol callback, turning a panic into a logged stack and
// an aborted connection. It reports whether f returned normally.
func (c *conn) safely(f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error(fmt.Sprintf("panic in protocol: %v\n%s", r, debug.Stack()), "system", c.tag())
			c.AbortConnection()
			ok = false
		}
	}()
	f()
	return true
}

// waitResumed blocks while reading is paused. It returns true when a graceful
// stop request is pending and must be delivered first.
func (c *conn) waitResumed() bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for c.paused && !c.stopReq {
		c.pcond.Wait()
	}
	return c.stopReq
}

// requestStop interrupts the read so StopRequested runs on the connection's
// goroutine.
func (c *conn) requestStop() {
	if _, ok := c.proto.(StopRequester); !ok {
		return
	}
	c.pmu.Lock()
	c.stopReq = true
	c.pcond.Broadcast()
	c.pmu.Unlock()
	c.nc.SetReadDeadline(time.Unix(1, 0))
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

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.nc.Write(p)
	c.sent.Add(int64(n))
	if err != nil {
		c.AbortConnection()
	}
	return n, err
}

func (c *conn) LoseConnection() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Swap(true) {
		return
	}
	c.ResumeProducing()
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		// The read loop keeps going (discarding) until the peer's FIN or
		// keepLingering gives up.
		c.lingerProgress = time.Now()
		c.lingerUnsent = -1
		c.nc.SetReadDeadline(time.Now().Add(lingerPoll))
		return
	}
	c.nc.Close()
}

// keepLingering is called when a read fails; it reports whether the
// failure was a linger poll after which the connection should stay open.
func (c *conn) keepLingering(err error) bool {
	if !c.closing.Load() || c.lingerProgress.IsZero() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	now := time.Now()
	unsent := unsentBytes(c.nc)
	if unsent == 0 {
		return false
	}
	if unsent != c.lingerUnsent {
		c.lingerUnsent = unsent
		c.lingerProgress = now
	}
	if now.Sub(c.lingerProgress) >= lingerTimeout {
		return false
	}
	c.nc.SetReadDeadline(now.Add(lingerPoll))
	return true
}

func (c *conn) AbortConnection() {
	c.closing.Store(true)
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.nc.Close()
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
	c.pcond.Broadcast()
	c.pmu.Unlock()
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
