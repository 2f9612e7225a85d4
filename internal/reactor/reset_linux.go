package reactor

import "golang.org/x/sys/unix"

// resetByPeer reports whether the TCP socket fd was reset by its peer.
// A peek cannot tell: after data then RST the kernel still hands out the
// data and keeps the reset for later, while the state is already CLOSE (a
// half-closed peer leaves it in CLOSE_WAIT instead).
func resetByPeer(fd int) bool {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && info.State == tcpClose
}

// tcpClose is TCP_CLOSE of the kernel's tcp_states.h.
const tcpClose = 7
