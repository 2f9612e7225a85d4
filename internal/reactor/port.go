package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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

	// ReadBufferSize is the size of each connection's read buffer; set it
	// before Start.
	ReadBufferSize int
	// System is the tag of the port's log lines; connections are tagged
	// "System,N,peer". It defaults to the service name; set it before
	// PrivilegedStart.
	System string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	stopping bool
	seq      uint64
	wg       sync.WaitGroup // connection goroutines
	accepted chan struct{}  // closed when the accept loop returns
}

// NewPort returns a listening service for ep. A nil logger means
// slog.Default.
func NewPort(name string, ep Endpoint, f Factory, log *slog.Logger) *Port {
	if log == nil {
		log = slog.Default()
	}
	return &Port{name: name, ep: ep, factory: f, log: log, System: name, conns: map[*conn]struct{}{}}
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
	p.log = p.log.With("system", p.System)
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
	p.accepted = make(chan struct{})
	go p.acceptLoop(p.ln, p.accepted)
	return nil
}

func (p *Port) acceptLoop(ln net.Listener, done chan struct{}) {
	defer close(done)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.log.Warn(fmt.Sprintf("accept: %v; retrying in %v", err, delay))
				time.Sleep(delay)
				continue
			}
			p.log.Error(fmt.Sprintf("accept: %v; no longer accepting", err))
			return
		}
		delay = 0
		p.serve(nc)
	}
}

func (p *Port) serve(nc net.Conn) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		nc.Close()
		return
	}
	p.seq++
	c := newConn(nc, p.factory.BuildProtocol(nc.RemoteAddr()), p.log, p.System, p.seq)
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()
	bufSize := p.ReadBufferSize
	if bufSize <= 0 {
		bufSize = DefaultReadBufferSize
	}
	go func() {
		defer p.wg.Done()
		defer p.forget(c)
		c.serve(bufSize)
	}()
}

func (p *Port) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Connections returns the number of live connections.
func (p *Port) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Stop closes the listener, asks every connection to finish, waits for them
// until ctx is done, then aborts the rest. It returns when every connection
// goroutine has ended.
func (p *Port) Stop(ctx context.Context) error {
	p.mu.Lock()
	first := !p.stopping
	p.stopping = true
	ln, accepted := p.ln, p.accepted
	live := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		live = append(live, c)
	}
	p.mu.Unlock()
	if ln != nil && first {
		ln.Close()
		p.log.Info("stopped listening on " + ln.Addr().String())
	}
	if accepted != nil {
		<-accepted
	}
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
	n := len(p.conns)
	for c := range p.conns {
		c.AbortConnection()
	}
	p.mu.Unlock()
	<-done
	if n > 0 {
		p.log.Warn(fmt.Sprintf("grace period over: aborted %d connection(s)", n))
	}
	return nil
}
