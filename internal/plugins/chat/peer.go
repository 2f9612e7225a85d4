package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"unicode/utf8"

	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

// peer is one client connection: its Protocol callbacks run on the
// connection's goroutine; other connections' goroutines send to it through
// its transport, whose bounded queue (--send-queue) never blocks them.
type peer struct {
	hub *Hub
	t   reactor.Transport
	dec wire.Decoder

	// lastActive is the clock time (UnixNano) of the last read that completed a frame.
	lastActive atomic.Int64
	// frameStart is the clock time (UnixNano) the frame in progress began
	// to arrive, 0 between frames; buffered is how much of it is held.
	frameStart atomic.Int64
	buffered   atomic.Int32
	// stopped is set once input is no longer processed (framing error,
	// eviction, time-out, shutdown).
	stopped atomic.Bool

	// Read and written on the connection's goroutine only. (The small
	// fields sit together: an idle server holds tens of thousands of
	// peers.)
	frames  uint32  // complete frames
	version uint32  // of the frame being handled, for replies
	id      wire.ID // zero until verified
	// errCount counts the protocol errors of the clock second (Unix)
	// errSecond, for --max-errors.
	errCount  int32
	errSecond int64

	// loginVersion is the version of the peer's verify; other peers'
	// goroutines read it under hub.mu, and it is written under hub.mu.
	loginVersion uint32
	// asked is set under hub.mu once the peer was asked to stop or is gone.
	asked bool
	// claim is the cluster's token for this session's login, under hub.mu.
	claim string
	key   atomic.Pointer[string] // the verified ID, for log lines
}

func (p *peer) ConnectionMade(t reactor.Transport) {
	p.t = t
	p.lastActive.Store(p.hub.clock.Now().UnixNano())
	p.hub.track(p)
}

func (p *peer) DataReceived(b []byte) {
	if p.stopped.Load() {
		return
	}
	before := p.frames
	err := p.dec.Feed(b, p.handle)
	var now int64 // read once per read, not per frame: clock reads add up
	if p.frames != before {
		now = p.hub.clock.Now().UnixNano()
		p.lastActive.Store(now)
	}
	p.noteFrameStart(before, now)
	var le *wire.LengthError
	if errors.As(err, &le) {
		code := wire.CodeLargeFrame
		if le.TooShort() {
			code = wire.CodeShortFrame
		}
		p.hub.closes.Warn(p.logger(), p.addrKey(), fmt.Sprintf("bad frame: %v; closing", err))
		p.version = le.Version
		p.replyError(code, err.Error(), nil)
		p.stop()
	}
}

// noteFrameStart records when the frame now in progress, if any, began: at
// this read if a frame was completed in it (the rest is a new frame), or
// if none was in progress before it. now is the clock's time if read
// already, else 0.
func (p *peer) noteFrameStart(framesBefore uint32, now int64) {
	n := p.dec.Buffered()
	p.buffered.Store(int32(n))
	switch {
	case n == 0:
		p.frameStart.Store(0)
	case p.frames != framesBefore || p.frameStart.Load() == 0:
		if now == 0 {
			now = p.hub.clock.Now().UnixNano()
		}
		p.frameStart.Store(now)
	}
}

func (p *peer) ConnectionLost(error) {
	p.stopped.Store(true)
	p.hub.forget(p)
}

// StopRequested is the server's graceful stop: finish writing what is
// queued, and what other connections send before they are asked to stop
// too, then close.
func (p *peer) StopRequested() { p.hub.stopRequested(p) }

// stop ends input processing and closes once the queue is written.
func (p *peer) stop() {
	p.stopped.Store(true)
	p.t.LoseConnection()
}

// drop closes a peer that stopped talking, after what is queued for it;
// the transport gives up on output that makes no progress.
func (p *peer) drop() { p.stop() }

// send queues an encoded frame. It never blocks on the network: a peer
// whose queue would exceed --send-queue is disconnected by its transport
// (which logs it). It reports whether the frame was queued.
func (p *peer) send(frame []byte) bool { return p.enqueue(nil, frame) == queued }

// enqueueResult is what became of a frame handed to enqueue.
type enqueueResult int

const (
	queued        enqueueResult = iota
	peerClosing                 // the connection is closing: nothing more is queued
	queueOverflow               // the frame would overflow the queue: the peer was disconnected
)

// enqueue is send, saying why a frame was not queued. A frame from
// another local peer is relayed through that peer's transport, so what
// one read of the sender's makes for p goes out in one system call once
// the sender's callback returns.
func (p *peer) enqueue(from *peer, frame []byte) enqueueResult {
	// Frames are never modified once encoded (a broadcast shares one
	// among every recipient), so the queue may keep them without a copy.
	var err error
	if from != nil {
		_, err = from.t.Relay(p.t, frame)
	} else {
		_, err = p.t.WriteShared(frame)
	}
	switch {
	case err == nil:
		return queued
	case errors.Is(err, reactor.ErrOutputQueueFull):
		p.stopped.Store(true)
		p.hub.overflows.Add(1)
		return queueOverflow
	}
	return peerClosing
}

// logger returns the hub's logger naming the peer; made when a line is
// written, since most connections never write one of their own.
func (p *peer) logger() *slog.Logger { return p.hub.log.With("peer", p.t.RemoteAddr().String()) }

// addrKey names the client's address for the hub's warning limits.
func (p *peer) addrKey() string { return logging.PeerKey(p.t.RemoteAddr()) }

// idForLog returns the ID the peer logged in with, from any goroutine.
func (p *peer) idForLog() string {
	if k := p.key.Load(); k != nil {
		return *k
	}
	return ""
}

// handle processes one frame; it returns false to stop decoding.
func (p *peer) handle(f wire.Frame) bool {
	p.frames++
	p.hub.metrics.frame(f.Command)
	p.version = f.Version
	if len(f.Body) > 0 && !utf8.Valid(f.Body) {
		p.protocolError(wire.CodeBadBody, "body is not UTF-8")
		return !p.stopped.Load()
	}
	switch f.Command {
	case wire.CmdHeartbeat:
	case wire.CmdVerify:
		p.verify(f.Body)
	case wire.CmdSingle, wire.CmdGroup, wire.CmdBroadcast:
		if p.id.Key == "" {
			p.protocolError(wire.CodeNotVerified, "verify first (command 1)")
			break
		}
		p.chat(f.Command, f.Body)
	default:
		p.protocolError(wire.CodeUnknownCmd, fmt.Sprintf("unknown command %d", f.Command))
	}
	return !p.stopped.Load()
}

func (p *peer) verify(body []byte) {
	var v wire.Verify
	if err := json.Unmarshal(body, &v); err != nil {
		p.protocolError(wire.CodeBadBody, "verify body: "+jsonProblem(err))
		return
	}
	id, err := wire.ParseID(v.PhoneNumber)
	if err != nil {
		p.protocolError(wire.CodeBadBody, "phone_number: "+err.Error())
		return
	}
	if p.hub.accounts != nil && !p.hub.authenticate(id.Key, v.Password) {
		p.protocolError(wire.CodeNotVerified, "wrong ID or password", "phone_number", id.Key)
		return
	}
	// Copy: the body aliases the read buffer.
	id.Raw = append(json.RawMessage(nil), id.Raw...)
	p.id = id
	p.hub.login(p, id)
}

func (p *peer) chat(cmd uint32, body []byte) {
	c, err := wire.ParseChat(body)
	if err != nil {
		p.protocolError(wire.CodeBadBody, "chat body: "+jsonProblem(err))
		return
	}
	// A client names itself as it logged in, byte for byte, on every
	// message: only another spelling needs parsing.
	if !bytes.Equal(bytes.TrimSpace(c.From), p.id.Raw) {
		from, err := wire.ParseID(c.From)
		if err != nil {
			p.protocolError(wire.CodeBadBody, "chat_from: "+err.Error())
			return
		}
		if from.Key != p.id.Key {
			p.protocolError(wire.CodeNotYou, "chat_from must be your own ID", "chat_from", from.Key)
			return
		}
	}
	if len(c.Content) == 0 || c.Content[0] != '"' {
		p.protocolError(wire.CodeBadBody, "chat_content must be a string")
		return
	}
	var to []wire.ID
	switch cmd {
	case wire.CmdSingle:
		id, err := wire.ParseID(c.To)
		if err != nil {
			p.protocolError(wire.CodeBadBody, "chat_to: "+err.Error())
			return
		}
		to = []wire.ID{id}
	case wire.CmdGroup:
		var list []json.RawMessage
		if err := json.Unmarshal(c.To, &list); err != nil || len(list) == 0 {
			p.protocolError(wire.CodeBadBody, "chat_to must be a non-empty list of IDs")
			return
		}
		to = make([]wire.ID, 0, len(list))
		for _, raw := range list {
			id, err := wire.ParseID(raw)
			if err != nil {
				p.protocolError(wire.CodeBadBody, "chat_to: "+err.Error())
				return
			}
			to = append(to, id)
		}
	}
	msg := newMessage(cmd+100, wire.AppendDelivered(nil, p.id.Raw, c.Content))
	if cmd == wire.CmdBroadcast {
		p.hub.broadcast(p, msg)
		p.hub.cluster.broadcast(msg)
		return
	}
	missed := p.hub.deliver(p, to, msg)
	if len(missed) > 0 {
		missed = p.hub.cluster.deliver(missed, msg, p.id.Key, p.claim)
	}
	if len(missed) > 0 {
		raws := make([]json.RawMessage, len(missed))
		for i, id := range missed {
			raws[i] = id.Raw
		}
		p.replyError(wire.CodeUndelivered, "not delivered: recipient offline", raws)
	}
}

// protocolError answers a frame the client got wrong, logs it (a few lines
// per interval from one address: a client repeating the fault must not
// rotate the log's history away) and closes a connection that commits more
// than --max-errors of them in one second.
func (p *peer) protocolError(code int, text string, logArgs ...any) {
	limit := p.hub.cfg.MaxErrors
	counted := limit > 0 && !p.stopped.Load()
	if counted {
		// Counted before the reply goes out: a client that heard it and
		// moved on to the next second finds the error in this one.
		if now := p.hub.clock.Now().Unix(); now != p.errSecond {
			p.errSecond, p.errCount = now, 0
		}
		p.errCount++
	}
	// Logged before the reply too: the reply may leave at once, and the
	// limiter's interval must be the one the client saw the error in.
	p.hub.warns.Warn(p.logger(), p.addrKey(), fmt.Sprintf("protocol error %d: %s", code, text), append(logArgs, "id", p.id.Key)...)
	p.replyError(code, text, nil)
	if counted && int(p.errCount) > limit {
		p.hub.closes.Warn(p.logger(), p.addrKey(), fmt.Sprintf("more than %d protocol errors in one second (--max-errors): closing", limit), "id", p.id.Key)
		p.replyError(wire.CodeTooManyErrors, fmt.Sprintf("more than %d protocol errors in one second", limit), nil)
		p.stop()
	}
}

func (p *peer) reply(cmd uint32, body []byte) {
	p.send(wire.AppendFrame(nil, p.version, cmd, body))
}

func (p *peer) replyError(code int, text string, undelivered []json.RawMessage) {
	body, _ := json.Marshal(wire.ErrorBody{Code: code, Error: text, Undelivered: undelivered})
	p.reply(wire.CmdError, body)
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s has the wrong type (%s)", te.Field, te.Value)
		}
		return "must be a JSON object"
	}
	return "not valid JSON"
}

// message is one relayed message, encoded once per protocol version in use
// by its recipients (in practice once).
type message struct {
	cmd  uint32
	body []byte
	// The frame for the first version asked for, and then any others:
	// every client of a deployment usually speaks the same one.
	first  versioned
	frames []versioned
}

type versioned struct {
	version uint32
	frame   []byte
}

func newMessage(cmd uint32, body []byte) *message { return &message{cmd: cmd, body: body} }

func (m *message) frame(version uint32) []byte {
	if m.first.frame != nil && m.first.version == version {
		return m.first.frame
	}
	for _, v := range m.frames {
		if v.version == version {
			return v.frame
		}
	}
	f := wire.AppendFrame(make([]byte, 0, wire.HeaderLen+len(m.body)), version, m.cmd, m.body)
	if m.first.frame == nil {
		m.first = versioned{version, f}
	} else {
		m.frames = append(m.frames, versioned{version, f})
	}
	return f
}
