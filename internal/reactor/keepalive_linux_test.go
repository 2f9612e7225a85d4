package reactor

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// Accepted connections must carry keep-alive although Go no longer sets it
// per accept: the kernel copies it from the listener.
func TestAcceptedConnectionsInheritKeepAlive(t *testing.T) {
	for _, iface := range []string{"127.0.0.1", "::1"} {
		ln, err := Endpoint{Kind: "tcp", Interface: iface}.Listen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		rc, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []struct {
			name       string
			level, opt int
			want       int
		}{
			{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveIdle},
			{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveInterval},
			{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
		} {
			var got int
			var gerr error
			rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o.level, o.opt) })
			if gerr != nil || got != o.want {
				t.Errorf("%s on an accepted %s connection: got %d (%v), want %d", o.name, iface, got, gerr, o.want)
			}
		}
	}
}
