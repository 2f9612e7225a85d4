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
// its readiness wakes exactly one reader, which reads until the socket is
// empty and then arms it again (level-triggered: bytes that came after its
// last read wake it at once).
//
// The descriptor is taken from the connection with RawConn.Control, never
// with File(): a dup would switch the shared open file to blocking mode
// and keep the epoll entry alive after the connection closed. A cancelled
// arming is deleted before the connection may close; a fired one stays in
// the set, disabled, and goes when the socket's file is released. Every
// arming carries a token of its own, so an event that raced a close never
// wakes the connection that took the same descriptor number next.
type poller struct {
	epfd int
	wake int // eventfd: tells the loop to end

	mu sync.Mutex
	// slots is indexed by descriptor: a slice, not a map, since
	// descriptors are small dense numbers and an idle server holds one
	// for each of tens of thousands of them.
	slots   []slot
	armed   int
	stopped bool

	// sweeps counts the port's quietTicks (dormant.go).
	sweeps atomic.Uint32

	done chan struct{}
}

// slot is one descriptor's arming: gen tells armings apart, so an event
// that raced a close never wakes the connection that took the number next.
type slot struct {
	gen uint32
	w   waker // nil: not armed
	// inSet: the descriptor is (as far as we know) in the epoll set; a
	// socket that woke stays there, disabled by EPOLLONESHOT, so arming
	// it again is one MOD. Closing the socket takes it out (the kernel
	// drops an entry when its file is released), which the next arming
	// of the number finds (ENOENT) and mends with an ADD.
	inSet bool
}

// waker is what an armed socket's readiness calls, in a goroutine of its own.
type waker interface{ wakeUp() }

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
	p := &poller{epfd: epfd, wake: wake, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// The event's 64 bits of user data carry the token: the descriptor plus
// one in the low half (0 is the stop), the generation in the high.
func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd = int32(uint32(t))
	ev.Pad = int32(uint32(t >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func splitToken(t uint64) (fd int, gen uint32) { return int(uint32(t)) - 1, uint32(t >> 32) }

// arm waits for rc's socket to become readable (or hung up, or in error)
// and then calls w.wakeUp in a goroutine of its own, once. It returns the
// arming's token for cancel (never 0).
func (p *poller) arm(rc syscall.RawConn, w waker) (uint64, error) {
	op := rawOps.Get().(*rawOp)
	cerr := rc.Control(op.control)
	fd := op.n
	rawOps.Put(op)
	if cerr != nil {
		return 0, cerr
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return 0, errPollerStopped
	}
	if fd >= len(p.slots) {
		p.slots = append(p.slots, make([]slot, fd+1-len(p.slots))...)
	}
	sl := &p.slots[fd]
	sl.gen++
	sl.w = w
	p.armed++
	t := uint64(fd+1) | uint64(sl.gen)<<32
	first, then := unix.EPOLL_CTL_ADD, unix.EPOLL_CTL_MOD
	if sl.inSet {
		first, then = then, first
	}
	sl.inSet = true
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, t)
	err := unix.EpollCtl(p.epfd, first, fd, &ev)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOENT) {
		err = unix.EpollCtl(p.epfd, then, fd, &ev)
	}
	if err != nil {
		p.take(t, true)
		return 0, fmt.Errorf("epoll_ctl: %w", err)
	}
	return t, nil
}

// take clears the arming t and returns its waker, or nil when it was
// already taken (woken or cancelled). With del the descriptor also leaves
// the epoll set: a cancelled arming is still enabled, and the connection
// may close next.
func (p *poller) take(t uint64, del bool) waker {
	fd, gen := splitToken(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd < 0 || fd >= len(p.slots) || p.slots[fd].gen != gen || p.slots[fd].w == nil {
		return nil
	}
	sl := &p.slots[fd]
	w := sl.w
	sl.w = nil
	p.armed--
	if del && sl.inSet {
		// Under mu: a cancel that finds the arming gone may close the
		// descriptor at once, and a DEL after that could hit the
		// connection that took the number next.
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		sl.inSet = false
	}
	return w
}

// cancel removes the wait t; it reports false when its waker was already
// called or is about to be, in which case the caller must let it run.
func (p *poller) cancel(t uint64) bool { return p.take(t, true) != nil }

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
			// The fired entry stays in the set, disabled (oneshot), for
			// the next arming's MOD.
			if w := p.take(t, false); w != nil { // else cancelled meanwhile
				go w.wakeUp()
			}
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
	return p.armed
}

// readNow reads what the socket holds without waiting: errWouldBlock when
// it holds nothing, io.EOF at the peer's FIN.
func (c *conn) readNow(p []byte) (int, error) {
	op := rawOps.Get().(*rawOp)
	op.p = p
	err := c.raw.Read(op.read)
	n, rerr := op.n, op.err
	op.p, op.err = nil, nil
	rawOps.Put(op)
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
