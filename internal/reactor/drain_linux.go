package reactor

import (
	"net"
	"os"
	"syscall"
)

// acceptPending takes up to max connections waiting in ln's listen queue
// without blocking. Stop uses it after ending the accept loop: Go's Accept
// cannot be asked to return only what is already queued.
func acceptPending(ln net.Listener, max int) []net.Conn {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var fds []int
	rc.Control(func(fd uintptr) {
		for len(fds) < max {
			nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if err == syscall.EINTR || err == syscall.ECONNABORTED {
				continue
			}
			if err != nil {
				return // EAGAIN: the queue is empty
			}
			fds = append(fds, nfd)
		}
	})
	conns := make([]net.Conn, 0, len(fds))
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "queued")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true) // as Go's Accept does
		}
		conns = append(conns, nc)
	}
	return conns
}
