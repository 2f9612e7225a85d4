package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// DefaultReadBufferSize is the per-connection read buffer unless a Port sets
// its own.
const DefaultReadBufferSize = 16 << 10

// Port is a listening endpoint as a service (Twisted's TCPServer /
// StreamServerEndpointService): it binds in PrivilegedStart, accepts in
// Start and, in Stop, stops accepting, asks live connections to finish and
// waits for them until the stop deadline, then closes what is left.
type Port struct {
	name    string
	ep      Endpoint
	factory Factory
	log     *slog.Logger
	connLog *slog.Logger // log without the port's tag: connections add their own

	// The settings below are read at Start.

	// ReadBufferSize is the initial and smallest size of each connection's
	// read buffer; it grows while reads fill it, up to MaxReadBufferSize
	// (0: DefaultMaxReadBufferSize; at most ReadBufferSize: fixed).
	ReadBufferSize, MaxReadBufferSize int
	// System is the tag of the port's log lines; connections are tagged
	// "System,N,peer". It defaults to the service name; set it before
	// PrivilegedStart.
	System string
	// MaxConnections caps the connections served at once (0: no cap);
	// plugins set it from the runner's --max-connections. Clients beyond
	// it wait, unread, in FIFO order (see the package doc).
	MaxConnections int
	// MaxWaiting bounds the wait queue; a client arriving when it is full
	// is closed at once. 0 bounds it by the descriptor limit instead (what
	// the limit leaves after the served connections and a reserve), and
	// then clients beyond it wait in the kernel's listen queue unaccepted.
	MaxWaiting int
	// IdleTimeout closes a connection after this long with no bytes in
	// either direction (0: never). One sweep on Clock checks every
	// connection each IdleTimeout/8 (at least 10 ms apart), so a silent
	// connection closes between IdleTimeout and IdleTimeout + IdleTimeout/8
	// (+10 ms for timeouts under 80 ms) of silence; no timer per connection.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose output queue made no progress
	// for this long (0: never).
	WriteTimeout time.Duration
	// HighWater is the queued output past which a connection stops reading
	// its peer, and MaxQueued the queued output past which it is closed
	// (0: DefaultHighWater, DefaultMaxQueued).
	HighWater, MaxQueued int
	// Clock times idle timeouts; nil means RealClock.
	Clock Clock
	// Metrics, if set, counts the port's clients and bytes.
	Metrics *PortMetrics
	// ReaderPerConnection keeps a goroutine blocked in each connection's
	// read, the way before the poller, for bisecting a regression; by
	// default (on Linux) an idle plain connection waits in the port's
	// poller with no goroutine and no read buffer.
	ReaderPerConnection bool

	mu         sync.Mutex
	ln         net.Listener
	conns      map[*conn]struct{}
	stopping   bool
	handedOver bool // the socket is a replacement's now (HandOver)
	seq        uint64
	wg         sync.WaitGroup // connections and parked-client goroutines
	accepted   chan struct{}  // closed when the accept loop returns
	cfg        connConfig
	metrics    *PortMetrics
	limit      int
	queue      []*parked     // clients waiting for a slot, oldest first
	bound      int           // the queue's bound (0: none)
	fdBound    bool          // bound comes from the descriptor limit: pause accepting at it
	room       chan struct{} // closed when a paused accept loop may go on
	// turnedAway counts clients closed, and saidFull whether the pause was
	// logged, since the queue filled up.
	turnedAway int
	saidFull   bool
	files      func() uint64 // the descriptor limit; fileLimit but in tests
	sweeper    *time.Timer   // runs sweep while the poller (cfg.pl) is up
	idleSweep  *LoopingCall  // with an IdleTimeout: from Start to Stop
}

// NewPort returns a listening service for ep. A nil logger means
// slog.Default.
func NewPort(name string, ep Endpoint, f Factory, log *slog.Logger) *Port {
	if log == nil {
		log = slog.Default()
	}
	return &Port{name: name, ep: ep, factory: f, log: log, connLog: log, System: name, conns: map[*conn]struct{}{}}
}

// Name returns the service name.
func (p *Port) Name() string { return p.name }

// Describe returns the endpoint string.
func (p *Port) Describe() string { return p.ep.String() }

// Endpoint returns what the port listens on.
func (p *Port) Endpoint() Endpoint { return p.ep }

// Addr returns the bound address, or nil before binding.
func (p *Port) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// PrivilegedStart binds the endpoint.
func (p *Port) PrivilegedStart(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	if p.stopping {
		return errors.New("port already stopped")
	}
	ln, err := p.ep.Listen(ctx)
	if err != nil {
		return err
	}
	p.ln = ln
	p.log = p.log.With(systemKey, p.System)
	p.log.Info("listening on " + ln.Addr().String())
	return nil
}

// Start binds (if PrivilegedStart was not called) and starts accepting.
func (p *Port) Start(ctx context.Context) error {
	if err := p.PrivilegedStart(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accepted != nil {
		return nil
	}
	if p.stopping {
		return errors.New("port already stopped")
	}
	p.limit = p.MaxConnections
	p.metrics = p.Metrics
	files := p.files
	if files == nil {
		files = fileLimit
	}
	p.bound, p.fdBound = waitBound(p.MaxWaiting, p.limit, files())
	p.cfg = connConfig{bufSize: p.ReadBufferSize, maxBufSize: p.MaxReadBufferSize, idleTimeout: p.IdleTimeout, writeTimeout: p.WriteTimeout,
		highWater: p.HighWater, maxQueued: p.MaxQueued, clock: p.Clock, metrics: p.Metrics, log: p.connLog, system: p.System, port: p}
	if !p.ReaderPerConnection {
		pl, err := newPoller()
		if err != nil {
			p.log.Warn(err.Error() + ": every connection keeps a reading goroutine")
		}
		p.cfg.pl = pl // nil: every connection keeps its goroutine
		if pl != nil {
			p.sweeper = time.AfterFunc(quietTick, p.sweep)
		}
	}
	p.cfg.normalize()
	p.startIdleSweep()
	p.accepted = make(chan struct{})
	go p.acceptLoop(p.ln, p.accepted)
	return nil
}

func (p *Port) acceptLoop(ln net.Listener, done chan struct{}) {
	defer close(done)
	var delay time.Duration
	var failed int      // accepts failed in a row
	var since time.Time // when the first of them failed
	var lastErr error
	for {
		if !p.waitForRoom() {
			return
		}
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return // Stop ended the loop to drain the listen queue itself
			}
			if isTemporary(err) {
				if failed == 0 {
					since = time.Now()
				}
				failed++
				lastErr = err
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.log.Warn(fmt.Sprintf("accept: %v; retrying in %v", err, delay))
				time.Sleep(delay)
				continue
			}
			p.log.Error(fmt.Sprintf("accept: %v; no longer accepting", err))
			return
		}
		if failed > 0 {
			p.log.Info(fmt.Sprintf("accepting again after %d failed accept(s) over %v (last: %v)", failed, time.Since(since).Round(time.Millisecond), bareErr(lastErr)))
			failed = 0
		}
		delay = 0
		p.admit(nc)
	}
}

// admit serves a new client, parks it when the limit is reached, or closes
// it when the wait queue is full too.
func (p *Port) admit(nc net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.metrics
	if m != nil {
		m.Accepted.Inc()
	}
	switch {
	case p.limit <= 0 || len(p.conns) < p.limit && len(p.queue) == 0:
		p.serveLocked(nc, nil)
	case p.queueFullLocked() && !p.fdBound:
		if p.turnedAway == 0 {
			p.log.Warn(fmt.Sprintf("wait queue full (%d clients): closing new client %s and those after it while it is full", len(p.queue), peerName(nc)))
		}
		p.turnedAway++
		if m != nil {
			m.Rejected(RejectQueueFull).Inc()
		}
		nc.Close()
	default:
		if m != nil {
			m.Waiting.Inc()
		}
		if len(p.queue) == 0 {
			p.log.Info(fmt.Sprintf("connection limit of %d reached: new clients wait", p.limit))
		}
		w := &parked{nc: nc, unpark: make(chan struct{}), done: make(chan struct{})}
		p.queue = append(p.queue, w)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.watch(w)
		}()
	}
}

// serveLocked starts a connection's goroutine; p.mu is held. w is the
// parked client being handed over, if any.
func (p *Port) serveLocked(nc net.Conn, w *parked) {
	p.seq++
	c := newConn(nc, p.factory.BuildProtocol(nc.RemoteAddr()), &p.cfg)
	c.seq = p.seq
	if p.cfg.idleTimeout > 0 {
		c.touch() // before the sweep can see it
	}
	if p.stopping {
		// A client served during shutdown gets its ConnectionMade, then
		// the same request to finish as every other connection.
		c.requestStop()
	}
	p.conns[c] = struct{}{}
	m := p.metrics
	if m != nil {
		m.Open.Inc()
	}
	// The connection, not its goroutine, is what wg counts: a dormant
	// connection has none.
	p.wg.Add(1)
	go func() {
		if w != nil {
			// The watcher holds the socket's read lock until it sees the
			// unpark deadline; clear that deadline only after it let go.
			<-w.done
			nc.SetReadDeadline(time.Time{})
		}
		c.start = time.Now().UnixNano()
		c.serve()
	}()
}

// ended is a connection's last act.
func (p *Port) ended(c *conn) {
	m := p.metrics
	var lived time.Duration
	if m != nil {
		lived = time.Duration(time.Now().UnixNano() - c.start)
	}
	p.forget(c)
	if m != nil {
		// After the open gauge went down: a scrape that counts this
		// connection's duration never still counts it open.
		m.Duration.Observe(lived.Seconds())
	}
	p.wg.Done()
}

func peerName(nc net.Conn) string {
	return string(appendPeer(nil, nc))
}

// appendPeer appends the peer's address as net.Addr.String writes it
// ("unix" for an unnamed unix socket peer); for TCP it does so without
// the three allocations of TCPAddr.String, on every connection's log line.
func appendPeer(b []byte, nc net.Conn) []byte {
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(b)
	case nil:
		return append(b, "unix"...)
	default:
		peer := a.String()
		if peer == "" || peer == "@" {
			peer = "unix"
		}
		return append(b, peer...)
	}
}

// forget drops a finished connection and hands its slot to the oldest
// waiting client.
func (p *Port) forget(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	m := p.metrics
	if m != nil {
		m.Open.Dec()
	}
	for len(p.queue) > 0 && len(p.conns) < p.limit {
		w := p.queue[0]
		p.queue = p.queue[1:]
		if m != nil {
			m.Waiting.Dec()
		}
		close(w.unpark)
		w.nc.SetReadDeadline(aLongTimeAgo)
		p.serveLocked(w.nc, w)
		p.queueShrankLocked()
	}
}

// Waiting returns the number of clients waiting for a slot.
func (p *Port) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Connections returns the number of live connections.
func (p *Port) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// drainQueue admits the clients the kernel had already accepted on ln when
// the accept loop stopped, at most maxDrain of them, and returns how many.
func (p *Port) drainQueue(ln net.Listener) int {
	conns := acceptPending(ln, maxDrain)
	for _, nc := range conns {
		p.admit(nc)
	}
	return len(conns)
}

// maxDrain bounds the clients taken from the listen queue at Stop, for a
// queue that clients keep filling.
const maxDrain = 4096

// stopListening ends accepting, once: after the accept loop returned, the
// clients the kernel had already accepted are served (unless the socket
// was handed over: they are the replacement's), then the listener closes.
func (p *Port) stopListening() {
	p.mu.Lock()
	first := !p.stopping
	p.stopping = true
	if p.room != nil {
		close(p.room) // an accept loop paused on a full queue returns
		p.room = nil
	}
	ln, accepted, handedOver := p.ln, p.accepted, p.handedOver
	p.mu.Unlock()
	if ln != nil && first {
		dl, ok := ln.(interface{ SetDeadline(time.Time) error })
		if ok && accepted != nil && dl.SetDeadline(aLongTimeAgo) == nil {
			<-accepted
			if handedOver {
				p.log.Info("handed " + ln.Addr().String() + " to the replacement")
			} else if n := p.drainQueue(ln); n > 0 {
				p.log.Info(fmt.Sprintf("serving %d client(s) that were waiting in the listen queue", n))
			}
		}
		ln.Close()
		p.log.Info("stopped listening on " + ln.Addr().String())
	}
	if accepted != nil {
		<-accepted
	}
}

// Stop stops accepting, asks every connection to finish, waits for them
// until ctx is done, then aborts the rest. It returns when every connection
// goroutine has ended. Clients whose connection the kernel already
// accepted, waiting in the listen queue, are served like the others:
// closing the listener would reset them. Clients waiting for a slot under
// the connection limit keep their place and are served as slots free up;
// only those still waiting when ctx is done are closed unserved.
func (p *Port) Stop(ctx context.Context) error {
	p.stopListening()
	// The poller goes last, once no connection can be dormant in it.
	defer func() {
		p.mu.Lock()
		pl, idleSweep := p.cfg.pl, p.idleSweep
		if p.sweeper != nil {
			p.sweeper.Stop()
			p.sweeper = nil
		}
		p.mu.Unlock()
		if idleSweep != nil {
			idleSweep.Stop() // not under p.mu: it waits for a sweep, which takes it
		}
		if pl != nil {
			pl.stop()
		}
	}()
	p.mu.Lock()
	live := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		live = append(live, c)
	}
	if n := len(p.queue); n > 0 {
		p.log.Info(fmt.Sprintf("%d client(s) waiting for a slot will be served as connections finish", n))
	}
	p.mu.Unlock()
	for _, c := range live {
		c.requestStop()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	waiting := p.queue
	p.queue = nil
	for _, w := range waiting {
		w.nc.Close()
		if m := p.metrics; m != nil {
			m.Waiting.Dec()
			m.Rejected(RejectShutdown).Inc()
		}
	}
	n := len(p.conns)
	for c := range p.conns {
		c.AbortConnection()
	}
	p.mu.Unlock()
	<-done
	if len(waiting) > 0 {
		p.log.Warn(fmt.Sprintf("grace period over: closed %d waiting client(s) never served", len(waiting)))
	}
	if n > 0 {
		p.log.Warn(fmt.Sprintf("grace period over: aborted %d connection(s)", n))
	}
	return nil
}
