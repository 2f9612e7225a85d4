package reactor

import (
	"net"
	"syscall"
	"unsafe"
)

// unsentBytes returns how many written bytes the kernel has not yet had
// acknowledged by the peer (SIOCOUTQ), or 0 when it cannot tell.
func unsentBytes(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	raw.Control(func(fd uintptr) {
		_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
		if e != 0 {
			n = 0
		}
	})
	return int(n)
}
