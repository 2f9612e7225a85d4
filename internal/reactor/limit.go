package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"
)

// aLongTimeAgo is a read deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

type maxConnsKey struct{}

// WithMaxConnections returns a ctx that carries the process-wide connection
// limit (the runner's --max-connections) to every Port started with it.
func WithMaxConnections(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, maxConnsKey{}, n)
}

// MaxConnectionsFrom returns the limit WithMaxConnections stored, or 0.
func MaxConnectionsFrom(ctx context.Context) int {
	n, _ := ctx.Value(maxConnsKey{}).(int)
	return n
}

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
	p.log.Info(fmt.Sprintf("waiting client %s hung up", peerName(w.nc)))
	if len(p.queue) == 0 {
		p.log.Info("wait queue drained")
	}
}

// hungUp blocks until the peer of nc is gone or the read is interrupted (a
// deadline or close); it reports the first. It peeks (MSG_PEEK) at the
// socket each time the netpoller says it is readable, so nothing is taken
// from the kernel's buffer: a peek of 0 bytes means an orderly close with
// nothing sent, an error such as ECONNRESET a reset. A client that sent
// data and then half-closed stays queued, since its request still deserves
// an answer.
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
		case err != nil || n == 0:
			gone = true
			return true
		default:
			return false // bytes wait for the protocol; watch for what follows
		}
	})
	return gone && err == nil
}
