//go:build !linux

package reactor

import (
	"errors"
	"sync/atomic"
	"syscall"
)

// Elsewhere every connection keeps a goroutine blocked in its read.
type poller struct{ sweeps atomic.Uint32 }

func newPoller() (*poller, error) { return nil, nil }

func (p *poller) arm(syscall.RawConn, func()) (func() bool, error) {
	return nil, errors.ErrUnsupported
}

func (p *poller) stop() {}

func (c *conn) readNow([]byte) (int, error) { return 0, errors.ErrUnsupported }
