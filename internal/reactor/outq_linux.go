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
