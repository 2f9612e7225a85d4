package reactor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller waits for idle sockets to become readable with no goroutine per
// socket: an epoll set of its own beside Go's netpoller (a second epoll
// set on the same descriptor is legal; both get the events) and one
// goroutine for the whole set. A socket is armed once (EPOLLONESHOT), so
// its readiness wakes exactly one reader, which reads until the socket
// would block and then arms it again.
//
// The descriptor is taken from the connection with RawConn.Control, never
// with File(): a dup would switch the shared open file to blocking mode
// and keep the epoll entry alive after the connection closed. Entries are
// deleted before the connection closes (cancel), and every arming carries
// a token of its own, so an event that raced a close never wakes the
// connection that took the same descriptor number next.
type poller struct {
	epfd int
	wake int // eventfd: tells the loop to end

	mu      sync.Mutex
	armed   map[uint64]armed
	next    uint64
	stopped bool

	// sweeps counts the port's quietTicks (dormant.go).
	sweeps atomic.Uint32

	done chan struct{}
}

type armed struct {
	fd    int
	ready func()
}

var errPollerStopped = errors.New("poller stopped")

// newPoller starts a poller; stop ends its goroutine.
func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, 0)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &poller{epfd: epfd, wake: wake, armed: map[uint64]armed{}, next: 1, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// The event's 64 bits of user data carry the token.
func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd = int32(uint32(t))
	ev.Pad = int32(uint32(t >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// arm waits for rc's socket to become readable (or hung up, or in error)
// and then calls ready in a goroutine of its own, once. The returned
// cancel removes the wait; it reports false when ready was already called
// or is about to be, in which case the caller must let ready run.
func (p *poller) arm(rc syscall.RawConn, ready func()) (cancel func() bool, err error) {
	var fd = -1
	if cerr := rc.Control(func(d uintptr) { fd = int(d) }); cerr != nil {
		return nil, cerr
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil, errPollerStopped
	}
	t := p.next
	p.next++
	p.armed[t] = armed{fd: fd, ready: ready}
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, t)
	// ADD, or MOD when the descriptor is still in the set from an earlier
	// arming (a oneshot entry stays in the set, disabled, until deleted).
	err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	if errors.Is(err, unix.EEXIST) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	}
	if err != nil {
		p.mu.Lock()
		delete(p.armed, t)
		p.mu.Unlock()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return func() bool { return p.cancel(t) }, nil
}

func (p *poller) cancel(t uint64) bool {
	p.mu.Lock()
	a, ok := p.armed[t]
	delete(p.armed, t)
	p.mu.Unlock()
	if ok {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, a.fd, nil)
	}
	return ok
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for i := range n {
			t := token(&events[i])
			if t == 0 {
				return // stop
			}
			p.mu.Lock()
			a, ok := p.armed[t]
			delete(p.armed, t)
			if ok {
				// The entry is disabled (oneshot); take it out so a close of
				// the descriptor leaves nothing behind. Under mu: a cancel
				// that finds the token gone may close the descriptor at
				// once, and a DEL after that could hit the connection that
				// took the number next.
				unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, a.fd, nil)
			}
			p.mu.Unlock()
			if !ok {
				continue // cancelled meanwhile
			}
			go a.ready()
		}
	}
}

// stop ends the loop; sockets still armed are never woken, so their owners
// must have cancelled them (a Port stops its connections first).
func (p *poller) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.wake)
	unix.Close(p.epfd)
}

// pending is how many sockets are armed (for tests).
func (p *poller) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.armed)
}

// readNow reads what the socket holds without waiting: errWouldBlock when
// it holds nothing, io.EOF at the peer's FIN.
func (c *conn) readNow(p []byte) (int, error) {
	if c.rdFn == nil {
		c.rdFn = func(fd uintptr) bool {
			c.rdN, c.rdErr = unix.Read(int(fd), c.rdP)
			return true // never wait in Go's netpoller: the caller parks
		}
	}
	c.rdP = p
	err := c.raw.Read(c.rdFn)
	n, rerr := c.rdN, c.rdErr
	c.rdP, c.rdErr = nil, nil
	switch {
	case err != nil: // closed, or a deadline interrupting the loop
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr == unix.EINTR:
		return 0, nil
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
