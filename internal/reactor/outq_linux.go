package reactor

import (
	"net"
	"syscall"
	"unsafe"
)

// unsentBytes returns how many written bytes the kernel has not yet had
// acknowledged by the peer (SIOCOUTQ), or 0 when it cannot tell.
func unsentBytes(nc net.Conn) int {
	out, _ := socketQueues(nc)
	return max(out, 0)
}

// unreadBytes returns how many bytes from the peer wait in the kernel,
// unread (SIOCINQ), or -1 when it cannot tell.
func unreadBytes(nc net.Conn) int {
	_, in := socketQueues(nc)
	return in
}

// inputWaiting reports whether bytes from the peer wait unread in the
// kernel (SIOCINQ). It is asked after every read that relayed something,
// so it makes one ioctl through the connection's descriptor, without the
// second ioctl and the allocation of unreadBytes.
func (c *conn) inputWaiting() bool {
	if c.raw == nil {
		return false
	}
	op := rawOps.Get().(*rawOp)
	op.n = 0
	c.raw.Control(op.inq)
	n := op.n
	rawOps.Put(op)
	return n > 0
}

// doInq sets n to the bytes waiting unread on fd, 0 when unknown.
func (op *rawOp) doInq(fd uintptr) {
	var in int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&in))); e == 0 {
		op.n = int(in)
	}
}

// settled reports whether the peer has acknowledged every byte written and
// nothing it sent is waiting unread. Closing such a socket outright cannot
// cost the peer any data: it already holds all of it, and no unread input
// turns the close into a reset.
func settled(nc net.Conn) bool {
	out, in := socketQueues(nc)
	return out == 0 && in == 0
}

// socketQueues returns the unacknowledged output (SIOCOUTQ) and unread
// input (SIOCINQ, which is TIOCINQ) byte counts, -1 for each the kernel
// did not give.
func socketQueues(nc net.Conn) (out, in int) {
	out, in = -1, -1
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var o, i int32
	raw.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&o))); e == 0 {
			out = int(o)
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&i))); e == 0 {
			in = int(i)
		}
	})
	return out, in
}

// iovecs is writev's argument, kept in a rawOp between calls.
type iovecs []syscall.Iovec

// set makes v describe bufs, at most maxIovecs of them, and returns how
// many it took.
func (v *iovecs) set(bufs []chunk) int {
	iov := (*v)[:0]
	for _, ch := range bufs {
		if len(iov) == maxIovecs {
			break
		}
		if len(ch.b) > 0 {
			e := syscall.Iovec{Base: &ch.b[0]}
			e.SetLen(len(ch.b))
			iov = append(iov, e)
		}
	}
	*v = iov
	return len(iov)
}

// reset drops the pointers into the queue's buffers.
func (v *iovecs) reset() {
	clear(*v)
	*v = (*v)[:0]
}

// maxIovecs is Linux's IOV_MAX: what one writev(2) takes.
const maxIovecs = 1024

// doWritev is one writev(2) of iov, never waiting for the socket to become
// writable: EAGAIN leaves n 0 and err nil.
func (op *rawOp) doWritev(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&op.iov[0])), uintptr(len(op.iov)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			op.n, op.err = 0, nil
		case 0:
			op.n, op.err = int(r), nil
		default:
			op.n, op.err = 0, e
		}
		return true
	}
}
