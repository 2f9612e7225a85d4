//go:build !linux

package reactor

import "net"

// acceptPending is Linux-only; elsewhere Stop closes the listener with its
// queue.
func acceptPending(net.Listener, int) []net.Conn { return nil }
