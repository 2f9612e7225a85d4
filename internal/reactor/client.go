package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// RetryPolicy returns how long to wait before the next connection attempt
// after failedAttempts consecutive failures (1 after the first).
type RetryPolicy func(failedAttempts int) time.Duration

// BackoffPolicy builds Twisted's backoffPolicy: initial × factor^attempts,
// capped at maxDelay, plus whatever jitter returns (nil means none).
func BackoffPolicy(initial time.Duration, factor float64, maxDelay time.Duration, jitter func() time.Duration) RetryPolicy {
	return func(attempts int) time.Duration {
		d := float64(initial) * math.Pow(factor, float64(min(attempts, 100)))
		delay := maxDelay
		if d < float64(maxDelay) {
			delay = time.Duration(d)
		}
		if jitter != nil {
			delay += jitter()
		}
		return delay
	}
}

// RandomJitter returns a jitter function drawing uniformly from [0, upTo).
func RandomJitter(upTo time.Duration) func() time.Duration {
	return func() time.Duration {
		if upTo <= 0 {
			return 0
		}
		return rand.N(upTo)
	}
}

// DefaultRetryPolicy is Twisted's default: 1 s × 1.5^n capped at 60 s, plus
// 0–1 s of jitter, so the first retry comes 1.5 s (+ jitter) after the first
// failure.
var DefaultRetryPolicy = BackoffPolicy(time.Second, 1.5, time.Minute, RandomJitter(time.Second))

// ErrServiceStopped is returned by WhenConnected once the service stops.
var ErrServiceStopped = errors.New("client service stopped")

// ClientService keeps one outgoing connection alive (Twisted's
// ClientService): it connects at Start and, whenever an attempt fails or
// the connection is lost, tries again after the delay its Policy gives.
// The failure count restarts once a connection is made.
type ClientService struct {
	name    string
	network string
	address string
	factory Factory
	log     *slog.Logger

	// Policy computes retry delays; nil means DefaultRetryPolicy. Set the
	// fields before Start.
	Policy RetryPolicy
	// Clock times the retry delays; nil means RealClock.
	Clock Clock
	// Dial opens a connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ReadBufferSize is the connection's read buffer; 0 means
	// DefaultReadBufferSize.
	ReadBufferSize int

	mu        sync.Mutex
	cancel    context.CancelFunc // ends the connect/retry loop
	done      chan struct{}      // closed when the loop has returned
	stopped   bool               // by Stop or GiveUp
	cur       *conn
	connected chan struct{} // closed (and replaced) at each new connection
	stopCh    chan struct{} // closed once stopped
}

// NewClientService returns a service that keeps a connection to address
// (as for net.Dial: "tcp", "host:port" or "unix", "/path") open, running
// a protocol built by f on each connection. A nil logger means
// slog.Default.
func NewClientService(name, network, address string, f Factory, log *slog.Logger) *ClientService {
	if log == nil {
		log = slog.Default()
	}
	return &ClientService{
		name: name, network: network, address: address, factory: f,
		log:       log.With(systemKey, name),
		connected: make(chan struct{}),
		stopCh:    make(chan struct{}),
	}
}

// Name returns the service name.
func (s *ClientService) Name() string { return s.name }

// Describe returns where the service connects.
func (s *ClientService) Describe() string { return s.network + ":" + s.address }

// Start begins connecting; it does not wait for the connection.
func (s *ClientService) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("client service already stopped")
	}
	if s.done != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	go s.loop(ctx, s.done)
	return nil
}

func (s *ClientService) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	policy := s.Policy
	if policy == nil {
		policy = DefaultRetryPolicy
	}
	dial := s.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	failed := 0
	for ctx.Err() == nil {
		nc, err := dial(ctx, s.network, s.address)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed++
			delay := policy(failed)
			s.log.Info(fmt.Sprintf("connecting to %s failed (attempt %d): %v; retrying in %v", s.address, failed, bareErr(err), delay.Round(time.Millisecond)))
			if !s.sleep(ctx, delay) {
				return
			}
			continue
		}
		failed = 0
		s.serve(nc)
		if ctx.Err() != nil {
			return
		}
		failed++
		delay := policy(failed)
		s.log.Info(fmt.Sprintf("connection to %s lost; reconnecting in %v", s.address, delay.Round(time.Millisecond)))
		if !s.sleep(ctx, delay) {
			return
		}
	}
}

// serve runs one connection until it closes.
func (s *ClientService) serve(nc net.Conn) {
	cfg := &connConfig{bufSize: s.ReadBufferSize, log: s.log}
	cfg.normalize()
	c := newConn(nc, s.factory.BuildProtocol(nc.RemoteAddr()), cfg)
	cfg.made = func(*conn) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cur = c // even when stopping, so Stop can abort it
		if s.stopped {
			c.LoseConnection()
			return
		}
		close(s.connected)
		s.connected = make(chan struct{})
	}
	s.log.Info("connected to " + nc.RemoteAddr().String())
	c.serve()
	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
}

// sleep waits d on the service's clock; false means the service stopped.
func (s *ClientService) sleep(ctx context.Context, d time.Duration) bool {
	wake := make(chan struct{})
	t := orReal(s.Clock).AfterFunc(d, func() { close(wake) })
	select {
	case <-wake:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// WhenConnected returns the protocol of the live connection, or waits for
// the next one. It fails with ctx's error, or ErrServiceStopped once the
// service stops.
func (s *ClientService) WhenConnected(ctx context.Context) (Protocol, error) {
	for {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return nil, ErrServiceStopped
		}
		if s.cur != nil && !s.cur.closing.Load() {
			p := s.cur.proto
			s.mu.Unlock()
			return p, nil
		}
		next := s.connected
		s.mu.Unlock()
		select {
		case <-next:
		case <-s.stopCh:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Stop cancels a connection attempt or a pending retry, or closes the live
// connection (hard once ctx is done), and returns when it is closed. No
// attempt is made after Stop.
func (s *ClientService) Stop(ctx context.Context) error {
	done, _ := s.halt()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.cur != nil {
		s.cur.AbortConnection()
	}
	s.mu.Unlock()
	<-done
	return nil
}

// GiveUp is for a protocol that has learnt that reconnecting is pointless
// (the server refused its login, say). Stop would wait for the
// connection's goroutine, the very one the protocol runs on; GiveUp does
// the rest of Stop's work without waiting, and logs reason. Since it
// cancels the loop before the connection can end, no retry is planned.
// Stop must still be called, to wait for the connection to close.
func (s *ClientService) GiveUp(reason error) {
	if _, first := s.halt(); first {
		s.log.Warn(fmt.Sprintf("%v; not reconnecting", reason))
	}
}

// halt marks the service stopped, cancels the loop and starts closing the
// live connection. It returns the channel closed when the loop has
// returned (nil if it never started) and whether this call stopped the
// service.
func (s *ClientService) halt() (done chan struct{}, first bool) {
	s.mu.Lock()
	first = !s.stopped
	if first {
		s.stopped = true
		close(s.stopCh)
	}
	cancel, done, cur := s.cancel, s.done, s.cur
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if cur != nil {
		cur.LoseConnection()
	}
	return done, first
}
