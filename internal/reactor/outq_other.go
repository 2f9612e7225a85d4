//go:build !linux

package reactor

import "net"

// unsentBytes is unknown off Linux; lingering then ends at the first poll.
func unsentBytes(net.Conn) int { return 0 }

// settled cannot be known off Linux, so every close lingers.
func settled(net.Conn) bool { return false }

// unreadBytes is unknown off Linux: a stop request is delivered at once.
func unreadBytes(net.Conn) int { return -1 }

// iovecs is empty off Linux: a relay's release leaves its bytes to the
// writer.
type iovecs struct{}

func (*iovecs) set([]chunk) int { return 0 }
func (*iovecs) reset()          {}

func (op *rawOp) doWritev(uintptr) bool { return true }

// inputWaiting is unknown off Linux: a relay's output goes at the end of
// each read.
func (c *conn) inputWaiting() bool { return false }

func (op *rawOp) doInq(uintptr) {}
