package ftplite

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/ftplite/cmdline"
	"github.com/twistd-go/twistd/internal/reactor"
)

// AUTH TLS turns the control connection into TLS (RFC 4217). The reactor
// hands the protocol raw bytes, so the TLS server runs over a pipe:
// DataReceived pushes ciphertext in, a goroutine owned by the connection
// reads plaintext out and feeds the command lines, and the TLS records go
// back out through the transport.

func cmdAuth(s *session, arg string) {
	switch strings.ToUpper(arg) {
	case "TLS", "SSL", "TLS-C":
	default:
		s.reply(504, "AUTH mechanism not supported; use AUTH TLS.")
		return
	}
	switch {
	case s.srv.tls == nil:
		s.reply(502, "TLS is not configured on this server.")
		return
	case s.secure:
		s.reply(503, "Already using TLS.")
		return
	}
	s.reply(234, "Proceed with negotiation.")
	// RFC 4217: a new security state means logging in again.
	s.secure, s.user, s.anon, s.pendingUser = true, "", false, ""
	p := newPipe(s.t)
	s.tlsIn = p
	s.switched = true
	if !s.t.Go(func(ctx context.Context) { s.readTLS(ctx, p) }) {
		p.close()
	}
}

func (s *session) readTLS(conn context.Context, p *pipe) {
	defer context.AfterFunc(conn, p.close)()
	tc := tls.Server(&pipeConn{p: p, t: s.t}, s.srv.tls)
	ctx, cancel := context.WithTimeout(conn, s.srv.cfg.DataTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Info("TLS handshake on the control connection failed", "error", err)
		s.t.AbortConnection()
		return
	}
	s.setOut(tc)
	split := cmdline.New(cmdline.MaxLine)
	buf := make([]byte, 4096)
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			split.Feed(buf[:n], s.onLine)
		}
		if err != nil {
			s.t.LoseConnection()
			return
		}
	}
}

func cmdPbsz(s *session, arg string) {
	if !s.secure {
		s.reply(503, "PBSZ needs AUTH TLS first.")
		return
	}
	s.pbsz = true
	s.reply(200, "PBSZ=0")
}

func cmdProt(s *session, arg string) {
	switch {
	case !s.pbsz:
		s.reply(503, "PROT needs PBSZ first.")
	case strings.EqualFold(arg, "P"):
		s.protP = true
		s.reply(200, "PROT now Private.")
	case strings.EqualFold(arg, "C") && s.srv.cfg.TLSRequired:
		s.reply(534, "Data connections must be protected.")
	case strings.EqualFold(arg, "C"):
		s.protP = false
		s.reply(200, "PROT now Clear.")
	case strings.EqualFold(arg, "S"), strings.EqualFold(arg, "E"):
		s.reply(536, "PROT level not supported.")
	default:
		s.reply(504, "PROT takes C or P.")
	}
}

// pipe carries ciphertext from DataReceived to the TLS reader. Reading is
// paused on the transport while too much is waiting.
type pipe struct {
	t      reactor.Transport
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
	paused bool
}

const pipeHigh = 256 << 10

func newPipe(t reactor.Transport) *pipe {
	p := &pipe{t: t}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *pipe) push(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.buf = append(p.buf, b...)
	if len(p.buf) > pipeHigh && !p.paused {
		p.paused = true
		p.t.PauseProducing()
	}
	p.cond.Signal()
}

func (p *pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.buf)
	p.buf = p.buf[:copy(p.buf, p.buf[n:])]
	if p.paused && len(p.buf) < pipeHigh/2 {
		p.paused = false
		p.t.ResumeProducing()
	}
	return n, nil
}

func (p *pipe) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// pipeConn is the net.Conn the TLS server sees.
type pipeConn struct {
	p *pipe
	t reactor.Transport
}

func (c *pipeConn) Read(b []byte) (int, error)       { return c.p.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error)      { return c.t.Write(b) }
func (c *pipeConn) Close() error                     { c.p.close(); return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return c.t.LocalAddr() }
func (c *pipeConn) RemoteAddr() net.Addr             { return c.t.RemoteAddr() }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
