package reactor

import (
	"net"
	"syscall"
)

// Keep-alive settings of served TCP connections: Go's defaults for accepted
// connections (first probe after 15 s idle, then every 15 s, 9 probes).
const (
	keepAliveIdle     = 15
	keepAliveInterval = 15
	keepAliveCount    = 9
)

// inheritKeepAlive sets keep-alive on the listening socket itself and turns
// off Go's per-accept setup. Linux copies socket options from the listener
// to each accepted socket, so every connection gets the same settings
// without the four setsockopt calls Go would make per accept; at tens of
// thousands of short connections a second those calls are a few per cent of
// the server's CPU.
func inheritKeepAlive(lc *net.ListenConfig) {
	lc.KeepAlive = -1
	lc.Control = func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range []struct{ level, opt, val int }{
				{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdle},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveInterval},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			} {
				if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.val); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
