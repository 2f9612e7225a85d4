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

type waker interface{ wakeUp() }

func (p *poller) arm(syscall.RawConn, waker) (uint64, error) { return 0, errors.ErrUnsupported }

func (p *poller) cancel(uint64) bool { return false }

func (p *poller) stop() {}

func (c *conn) readNow([]byte) (int, error) { return 0, errors.ErrUnsupported }
