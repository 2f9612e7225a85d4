package reactor

import (
	"crypto/tls"
	"errors"
	"net"
)

// StartTLS switches a live connection to TLS as the server side (FTP's
// AUTH TLS, SMTP's STARTTLS). Output queued before it is flushed in clear
// first; from the next read on, DataReceived gets plaintext and writes are
// encrypted. early holds bytes the protocol already read past the switch
// point (a client that sent its hello without waiting for the reply); they
// are handed to TLS first. It must be called from a callback of this
// connection. The handshake runs on the connection's goroutine at its next
// read; if it fails the connection closes with the handshake's error as
// ConnectionLost's reason.
func (c *conn) StartTLS(cfg *tls.Config, early []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tc != nil {
		return errors.New("StartTLS: already using TLS")
	}
	if o := c.out; o != nil && o.held {
		o.held = false // not waiting for a relaying callback to end
		c.kickLocked(o)
	}
	for c.wqBytes > 0 && !c.dead {
		c.out.wake.Wait() // the writer broadcasts when it ran dry
	}
	if c.dead || c.closing.Load() {
		return net.ErrClosed
	}
	var under net.Conn = c.nc
	if len(early) > 0 {
		under = &earlyConn{Conn: c.nc, early: append([]byte(nil), early...)}
	}
	c.tc = tls.Server(under, cfg)
	c.raw = nil // every write is a TLS record now: no inline write(2) or read(2)
	return nil
}

// earlyConn returns bytes already read before the connection's own.
type earlyConn struct {
	net.Conn
	early []byte
}

func (e *earlyConn) Read(p []byte) (int, error) {
	if len(e.early) > 0 {
		n := copy(p, e.early)
		e.early = e.early[n:]
		return n, nil
	}
	return e.Conn.Read(p)
}
