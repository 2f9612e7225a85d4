package reactor

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"
)

// aLongTimeAgo is a read deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// parked is a client accepted while the port was at its limit.
type parked struct {
	nc     net.Conn
	unpark chan struct{} // closed (under Port.mu) when handed a slot
	done   chan struct{} // closed when the watcher no longer reads the socket
}

// watch waits, without consuming a byte, for a parked client to hang up,
// and drops it from the queue if it does. It returns when the client left,
// was handed a slot (forget sets a past read deadline to wake it) or the
// port stopped.
func (p *Port) watch(w *parked) {
	defer close(w.done)
	if !hungUp(w.nc, w.unpark) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.queue, w)
	if i < 0 {
		return // already handed a slot or closed by Stop
	}
	p.queue = slices.Delete(p.queue, i, i+1)
	w.nc.Close()
	if m := p.metrics; m != nil {
		m.Waiting.Dec()
		m.Rejected(RejectHungUp).Inc()
	}
	p.log.Info(fmt.Sprintf("waiting client %s hung up", peerName(w.nc)))
	p.queueShrankLocked()
}

// FDReserve is how many descriptors the default wait-queue bound leaves
// for everything but connections: accepting, the log file and its
// rotation, files a protocol opens, the runner's own.
const FDReserve = 64

// RaiseFileLimit raises the soft limit on open descriptors to the hard
// limit and returns the soft limit now in force. Go's runtime does the
// same at start-up (Go 1.19 on); calling it again is harmless and gives
// the runner the figure to log.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("descriptor limit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("raising the descriptor limit to %d: %w", r.Max, err)
		}
	}
	return r.Cur, nil
}

// fileLimit returns the soft limit on open descriptors, 0 if unknown.
func fileLimit() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	return r.Cur
}

// waitBound is the wait queue's bound under a connection limit, and
// whether it came from the descriptor limit rather than MaxWaiting: the
// descriptors left when the served connections and FDReserve have theirs.
// Other ports share the same descriptors, so this bounds each port alone.
func waitBound(maxWaiting, limit int, files uint64) (int, bool) {
	if maxWaiting > 0 || limit <= 0 || files == 0 || files > 1<<30 {
		return maxWaiting, false
	}
	return max(int(files)-FDReserve-limit, 1), true
}

// queueFullLocked reports whether a new client finds the wait queue full;
// p.mu is held.
func (p *Port) queueFullLocked() bool {
	return p.bound > 0 && len(p.queue) >= p.bound
}

// queueShrankLocked wakes an accept loop paused on a full queue and, when
// the queue drained, says so, with how many clients were closed while it
// was full: the full queue was reported once, at the start of the spell,
// however often it filled again until it drained. p.mu is held.
func (p *Port) queueShrankLocked() {
	if p.room != nil && !p.queueFullLocked() {
		close(p.room)
		p.room = nil
	}
	if len(p.queue) > 0 {
		return
	}
	switch {
	case p.turnedAway > 0:
		p.log.Info(fmt.Sprintf("wait queue drained; %d client(s) were closed while it was full", p.turnedAway))
	case p.saidFull:
		p.log.Info("wait queue drained; accepting without pause again")
	default:
		p.log.Info("wait queue drained")
	}
	p.turnedAway, p.saidFull = 0, false
}

// waitForRoom holds the accept loop while the wait queue, bounded by the
// descriptor limit, is full: further clients wait in the kernel's listen
// queue, which costs no descriptor, instead of being closed. It says so
// once per spell, and returns false when the port stops.
func (p *Port) waitForRoom() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fdBound || !p.queueFullLocked() {
		return !p.stopping
	}
	if !p.saidFull {
		p.saidFull = true
		p.log.Warn(fmt.Sprintf("wait queue full (%d clients, its share of the descriptor limit): new clients wait in the listen queue until it drains", len(p.queue)))
	}
	for p.queueFullLocked() && !p.stopping {
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		<-room
		p.mu.Lock()
	}
	return !p.stopping
}

// hungUp blocks until the peer of nc is gone or the read is interrupted (a
// deadline or close); it reports the first. It peeks (MSG_PEEK) at the
// socket each time the netpoller says it is readable, so nothing is taken
// from the kernel's buffer: a peek of 0 bytes means an orderly close with
// nothing sent, an error such as ECONNRESET a reset. Bytes waiting hide a
// reset that came after them, so then the socket's TCP state is asked. A
// client that sent data and then half-closed stays queued, since its
// request still deserves an answer.
func hungUp(nc net.Conn, unpark <-chan struct{}) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		<-unpark
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		<-unpark
		return false
	}
	gone := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
			return false // nothing yet: wait for the next readiness event
		case err != nil || n == 0 || resetByPeer(int(fd)):
			gone = true
			return true
		default:
			return false // bytes wait for the protocol; watch for what follows
		}
	})
	return gone && err == nil
}
