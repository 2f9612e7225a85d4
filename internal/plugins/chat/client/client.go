// Package client is a Go client of the chat protocol, used by the tests and
// the load generator. It keeps one connection to the server alive with
// reactor.ClientService (reconnecting with backoff), logs in again on every
// new connection, sends heartbeats on a reactor.LoopingCall, and hands
// every frame the server sends to a handler.
//
// A lost connection is retried, but two verdicts of the server end the
// client for good, because logging in again could only repeat them:
//
//   - *RefusedError (errors.Is(err, ErrRefused)): the server answered the
//     verify with an error reply (command 199) instead of 101. Retrying the
//     same verify would be refused the same way, forever.
//   - ErrReplaced: after a successful login the server sent 199 with code
//     409, because another connection logged in with the same ID. Logging
//     in again would evict that connection in turn, and the two clients
//     would take the ID from each other forever.
//
// After either, the client makes no more connections; LoggedIn, Send,
// Single, Group and Broadcast return the verdict, Err reports it, and Done
// and the Messages channel are closed. Stop should still be called: it
// waits for the connection's goroutines to finish. Any other error reply
// (404, 410, ...) is an ordinary frame for the handler.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

// Config describes a client.
type Config struct {
	// Network and Address are where the server listens, as for net.Dial.
	Network, Address string
	// ID is the identity to log in with, as a JSON value: `"alice"` or
	// `13800138000`.
	ID string
	// Password, if set, is sent with the verify, for a server started with
	// --users; a wrong one is refused with 401 (a *RefusedError).
	Password string
	// Version is the protocol version put in every frame; 0 means 1.
	Version uint32
	// Heartbeat is the interval between heartbeats; 0 means 10 s, negative
	// disables them.
	Heartbeat time.Duration
	// Clock times heartbeats and reconnection delays; nil means the wall
	// clock.
	Clock reactor.Clock
	// Policy gives reconnection delays; nil means reactor.DefaultRetryPolicy.
	Policy reactor.RetryPolicy
	// Handler receives every frame the server sends after the verify
	// result, on the connection's goroutine; its Body is only valid during
	// the call. nil means frames go to Messages.
	Handler func(wire.Frame)
	// Log is the client's logger; nil means slog.Default.
	Log *slog.Logger
	// ReadBufferSize is the connection's read buffer; 0 means 4 KiB.
	ReadBufferSize int
	// Dial opens each connection; nil means a net.Dialer. A load generator
	// sets one with a LocalAddr to spread its clients over several source
	// addresses once one address runs out of ephemeral ports.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Message is a frame the server sent, as queued on Messages.
type Message struct {
	Command uint32
	Version uint32
	Body    json.RawMessage
}

// Client is a chat client; it is a service (Start, Stop).
type Client struct {
	cfg      Config
	id       wire.ID
	svc      *reactor.ClientService
	messages chan Message
	hb       []byte // the heartbeat frame

	err      error         // the server's verdict; written once, before done closes
	done     chan struct{} // closed by a verdict or Stop: unblocks a full Messages
	doneOnce sync.Once
}

// ErrRefused matches (with errors.Is) every *RefusedError.
var ErrRefused = errors.New("chat client: login refused")

// ErrReplaced is the verdict of a server that closed this client's
// connection because the same ID logged in on another one (code 409).
var ErrReplaced = errors.New("chat client: the ID logged in on another connection")

// RefusedError is the server's error reply to the client's verify: the
// login was refused, and the client has stopped.
type RefusedError struct {
	Code    int    // the reply's code, such as 401 or 403
	Message string // the reply's error text
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("chat client: login refused: %d %s", e.Code, e.Message)
}

// Is makes errors.Is(err, ErrRefused) hold whatever the code.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// New checks cfg and returns a stopped client.
func New(name string, cfg Config) (*Client, error) {
	id, err := wire.ParseID(json.RawMessage(cfg.ID))
	if err != nil {
		return nil, fmt.Errorf("chat client: ID %s: %w", cfg.ID, err)
	}
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.ReadBufferSize == 0 {
		cfg.ReadBufferSize = 4 << 10
	}
	c := &Client{cfg: cfg, id: id, hb: wire.AppendFrame(nil, cfg.Version, wire.CmdHeartbeat, nil), done: make(chan struct{})}
	if cfg.Handler == nil {
		c.messages = make(chan Message, 1024)
	}
	c.svc = reactor.NewClientService(name, cfg.Network, cfg.Address,
		reactor.FactoryFunc(func(net.Addr) reactor.Protocol { return c.newSession() }), cfg.Log)
	c.svc.Clock = cfg.Clock
	c.svc.Policy = cfg.Policy
	c.svc.ReadBufferSize = cfg.ReadBufferSize
	c.svc.Dial = cfg.Dial
	return c, nil
}

// Name returns the service name.
func (c *Client) Name() string { return c.svc.Name() }

// Start begins connecting; it does not wait (see LoggedIn). A client
// cannot be started again after Stop or a verdict.
func (c *Client) Start(ctx context.Context) error { return c.svc.Start(ctx) }

// Stop closes the connection and stops reconnecting. It is needed after a
// verdict too, and returns promptly then.
func (c *Client) Stop(ctx context.Context) error {
	first := c.finish(nil)
	err := c.svc.Stop(ctx)
	// After a verdict, end has closed messages. Otherwise it is safe here:
	// svc.Stop returns only once its loop, the one goroutine that sends on
	// messages, has returned.
	if first && c.messages != nil {
		close(c.messages)
	}
	return err
}

// Messages returns the frames received when Config.Handler is nil. If it
// is not drained, reading stops once 1,024 are waiting (the server then
// sees a slow reader). It is closed after a verdict (see Err) and once Stop
// returns, so a range over it ends.
func (c *Client) Messages() <-chan Message { return c.messages }

// Done is closed once the client has ended: by the server's verdict (Err
// says which) or by Stop.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns the verdict that ended the client (a *RefusedError or
// ErrReplaced), or nil.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// LoggedIn waits until the current connection's verify has succeeded. It
// returns the verdict at once if the server has ended the client.
func (c *Client) LoggedIn(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

// session returns the live, logged-in session, waiting for one.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		p, err := c.svc.WhenConnected(ctx)
		if err != nil {
			// The service is stopped after a verdict; say why.
			return nil, c.errOr(err)
		}
		s := p.(*session)
		select {
		case <-s.verified:
			// A replaced session stays verified.
			if err := c.Err(); err != nil {
				return nil, err
			}
			return s, nil
		case <-s.lost:
		case <-c.done:
			// Sooner than lost: the connection may linger while closing.
			return nil, c.errOr(reactor.ErrServiceStopped)
		case <-ctx.Done():
			return nil, c.errOr(context.Cause(ctx))
		}
	}
}

// errOr returns the verdict if there is one, else err.
func (c *Client) errOr(err error) error {
	if v := c.Err(); v != nil {
		return v
	}
	return err
}

// finish records a verdict (nil for Stop) and closes done. Only the first
// call does so, and it alone reports true: the caller that ended the
// client is the one to close messages.
func (c *Client) finish(verdict error) (first bool) {
	c.doneOnce.Do(func() {
		c.err = verdict
		close(c.done)
		first = true
	})
	return first
}

// Single sends chat_content to one user.
func (c *Client) Single(ctx context.Context, to, content string) error {
	return c.chat(ctx, wire.CmdSingle, json.RawMessage(to), content)
}

// Group sends chat_content to several users (IDs as JSON values).
func (c *Client) Group(ctx context.Context, to []string, content string) error {
	raw := make([]json.RawMessage, len(to))
	for i, id := range to {
		raw[i] = json.RawMessage(id)
	}
	list, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	return c.chat(ctx, wire.CmdGroup, list, content)
}

// Broadcast sends chat_content to every other logged-in user.
func (c *Client) Broadcast(ctx context.Context, content string) error {
	return c.chat(ctx, wire.CmdBroadcast, nil, content)
}

func (c *Client) chat(ctx context.Context, cmd uint32, to json.RawMessage, content string) error {
	body, err := json.Marshal(wire.Chat{From: c.id.Raw, To: to, Content: mustString(content)})
	if err != nil {
		return err
	}
	return c.Send(ctx, cmd, body)
}

// Send writes one frame with the client's version once logged in.
func (c *Client) Send(ctx context.Context, cmd uint32, body []byte) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if _, err := s.t.Write(wire.AppendFrame(nil, c.cfg.Version, cmd, body)); err != nil {
		// A verdict arriving during the write closes the connection; the
		// verdict is the reason.
		return c.errOr(err)
	}
	return nil
}

func mustString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// session is the protocol of one connection.
type session struct {
	c        *Client
	t        reactor.Transport
	dec      wire.Decoder
	hb       *reactor.LoopingCall
	verified chan struct{}
	lost     chan struct{}
	// Only the connection's goroutine uses these.
	loggedIn bool // 101 seen, verified closed
	ended    bool // a verdict came; later input is not for anyone
}

func (c *Client) newSession() *session {
	return &session{c: c, verified: make(chan struct{}), lost: make(chan struct{})}
}

func (s *session) ConnectionMade(t reactor.Transport) {
	s.t = t
	v := wire.Verify{PhoneNumber: s.c.id.Raw}
	if s.c.cfg.Password != "" {
		v.Password = &s.c.cfg.Password
	}
	body, _ := json.Marshal(v)
	if _, err := t.Write(wire.AppendFrame(nil, s.c.cfg.Version, wire.CmdVerify, body)); err != nil {
		return
	}
	if s.c.cfg.Heartbeat > 0 {
		s.hb = reactor.NewLoopingCall(s.c.cfg.Clock, func() { t.Write(s.c.hb) })
		s.hb.Start(s.c.cfg.Heartbeat, false)
	}
}

func (s *session) DataReceived(p []byte) {
	if s.ended {
		return
	}
	if err := s.dec.Feed(p, s.frame); err != nil {
		s.t.AbortConnection()
	}
}

func (s *session) frame(f wire.Frame) bool {
	switch {
	case f.Command == wire.CmdVerifyResult:
		if !s.loggedIn {
			s.loggedIn = true
			close(s.verified)
		}
		return true
	case f.Command == wire.CmdError && !s.loggedIn:
		// Before the 101 the only frame sent is the verify (a heartbeat
		// gets no reply), so any error reply is the verify's answer.
		var e wire.ErrorBody
		if err := json.Unmarshal(f.Body, &e); err != nil {
			e.Error = fmt.Sprintf("unreadable error reply %.100q", f.Body)
		}
		s.end(&RefusedError{Code: e.Code, Message: e.Error})
		return false
	case f.Command == wire.CmdError && errorCode(f.Body) == wire.CodeReplaced:
		s.end(ErrReplaced)
		return false
	}
	if h := s.c.cfg.Handler; h != nil {
		h(f)
		return true
	}
	select {
	case s.c.messages <- Message{Command: f.Command, Version: f.Version, Body: append(json.RawMessage(nil), f.Body...)}:
		return true
	case <-s.c.done:
		return false
	}
}

// errorCode returns the code of an error reply, or 0.
func errorCode(body []byte) int {
	var e struct {
		Code int `json:"code"`
	}
	json.Unmarshal(body, &e)
	return e.Code
}

// end ends the client with the server's verdict. It runs on the
// connection's goroutine, the service's retry loop, where svc.Stop would
// wait for itself; GiveUp stops the loop before it can plan a retry.
func (s *session) end(verdict error) {
	s.ended = true
	if !s.c.finish(verdict) {
		return // Stop came first and is closing the connection.
	}
	if s.c.messages != nil {
		// This goroutine is the only sender, and ended keeps it from
		// sending more.
		close(s.c.messages)
	}
	s.c.svc.GiveUp(verdict)
}

func (s *session) ConnectionLost(error) {
	if s.hb != nil {
		s.hb.Stop()
	}
	close(s.lost)
}
