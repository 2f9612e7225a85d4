// Package client is a Go client of the chat protocol, used by the tests and
// the load generator. It keeps one connection to the server alive with
// reactor.ClientService (reconnecting with backoff), logs in again on every
// new connection, sends heartbeats on a reactor.LoopingCall, and hands
// every frame the server sends to a handler.
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
	hb       []byte        // the heartbeat frame
	stopping chan struct{} // closed by Stop: unblocks a full Messages
	stopOnce sync.Once
}

// ErrNotConnected is returned when a send finds no live connection.
var ErrNotConnected = errors.New("chat client: not connected")

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
	c := &Client{cfg: cfg, id: id, hb: wire.AppendFrame(nil, cfg.Version, wire.CmdHeartbeat, nil), stopping: make(chan struct{})}
	if cfg.Handler == nil {
		c.messages = make(chan Message, 1024)
	}
	c.svc = reactor.NewClientService(name, cfg.Network, cfg.Address,
		reactor.FactoryFunc(func(net.Addr) reactor.Protocol { return c.newSession() }), cfg.Log)
	c.svc.Clock = cfg.Clock
	c.svc.Policy = cfg.Policy
	c.svc.ReadBufferSize = cfg.ReadBufferSize
	return c, nil
}

// Name returns the service name.
func (c *Client) Name() string { return c.svc.Name() }

// Start begins connecting; it does not wait (see LoggedIn).
func (c *Client) Start(ctx context.Context) error { return c.svc.Start(ctx) }

// Stop closes the connection and stops reconnecting.
func (c *Client) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stopping) })
	return c.svc.Stop(ctx)
}

// Messages returns the frames received when Config.Handler is nil. If it
// is not drained, reading stops once 1,024 are waiting (the server then
// sees a slow reader).
func (c *Client) Messages() <-chan Message { return c.messages }

// LoggedIn waits until the current connection's verify has succeeded.
func (c *Client) LoggedIn(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

// session returns the live, logged-in session, waiting for one.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		p, err := c.svc.WhenConnected(ctx)
		if err != nil {
			return nil, err
		}
		s := p.(*session)
		select {
		case <-s.verified:
			return s, nil
		case <-s.lost:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
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
	_, err = s.t.Write(wire.AppendFrame(nil, c.cfg.Version, cmd, body))
	return err
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
	once     sync.Once
}

func (c *Client) newSession() *session {
	return &session{c: c, verified: make(chan struct{}), lost: make(chan struct{})}
}

func (s *session) ConnectionMade(t reactor.Transport) {
	s.t = t
	body, _ := json.Marshal(wire.Verify{PhoneNumber: s.c.id.Raw})
	if _, err := t.Write(wire.AppendFrame(nil, s.c.cfg.Version, wire.CmdVerify, body)); err != nil {
		return
	}
	if s.c.cfg.Heartbeat > 0 {
		s.hb = reactor.NewLoopingCall(s.c.cfg.Clock, func() { t.Write(s.c.hb) })
		s.hb.Start(s.c.cfg.Heartbeat, false)
	}
}

func (s *session) DataReceived(p []byte) {
	if err := s.dec.Feed(p, s.frame); err != nil {
		s.t.AbortConnection()
	}
}

func (s *session) frame(f wire.Frame) bool {
	if f.Command == wire.CmdVerifyResult {
		s.once.Do(func() { close(s.verified) })
		return true
	}
	if h := s.c.cfg.Handler; h != nil {
		h(f)
		return true
	}
	select {
	case s.c.messages <- Message{Command: f.Command, Version: f.Version, Body: append(json.RawMessage(nil), f.Body...)}:
		return true
	case <-s.c.stopping:
		return false
	}
}

func (s *session) ConnectionLost(error) {
	if s.hb != nil {
		s.hb.Stop()
	}
	close(s.lost)
}
