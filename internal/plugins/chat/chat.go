// Package chat is the framed JSON chat server as a plugin: users log in
// with an ID (a phone number) and exchange direct, group and broadcast
// messages; silent connections are dropped after a heartbeat timeout.
//
// The wire format (package wire) is byte-compatible with the classic
// implementation of this protocol; what this server adds is documented in
// the plugin's long help (twistd chat --help), repeated here:
//
//   - Error reply: command 199, body {"code": N, "error": "text"}, with the
//     version of the frame it answers. Codes: 400 body not JSON of the
//     expected shape, 401 chat command before verify (or, with --users, a
//     verify without the ID's password), 403 chat_from is not
//     the sender's ID (nothing is relayed), 404 unknown command id, 411
//     frame length below 12 and 413 above --max-frame (both then close the
//     connection, after the reply is sent), 429 more than --max-errors
//     protocol errors in one second (closed likewise).
//   - Delivery failure: 199 {"code": 410, "error": "...", "undelivered":
//     [IDs]} lists, as the sender wrote them, recipients of a 2 or 3 that
//     were offline (or were just disconnected for a full queue).
//   - Duplicate login: the older connection receives 199 {"code": 409,
//     "error": "logged in from another connection"} and is closed; the new
//     one gets 101 {"code": 1} and owns the ID.
//   - Credentials (--users): a "password" in the verify body, checked
//     against a file of ID:bcrypt-hash lines; without --users IDs are
//     unauthenticated, as in the classic server.
//
// A fan-out encodes the message once and hands it to each recipient's
// transport, whose bounded output queue (the reactor's) never blocks the
// sender, so a slow reader never delays the others. A connection whose
// queue exceeds --send-queue bytes is disconnected.
//
// # Several instances (--redis)
//
// With --redis URL, instances sharing one Redis server behave as one
// server; without it the hub is alone, as before (both satisfy the
// package's cluster interface; see cluster.go and redis.go). Redis holds
// presence: a key per logged-in ID naming the session that holds it,
// with an expiry (--presence-ttl, 15 s) each instance renews every third
// of it. A login sets the key (SET ... GET) before it is answered; if it
// named a session on another instance, that instance is told to close it
// (409). Direct and group messages for recipients not logged in here go
// through an outbox, so a sender never waits on Redis: one goroutine
// takes what is queued (up to 512 messages): one MGET of all their
// recipients' sessions, then one pipeline of publishes: the direct
// messages for one instance as one publish to its channel (a JSON array
// of envelopes), each broadcast as one publish to the common channel,
// each instance fanning out to its own users. Heartbeats, time-outs and the send
// queues stay local. One sender's messages to one recipient stay in
// order: one queue, one publishing connection at a time, pipelines run
// in order, and a subscriber receives in publish order.
//
// What is at most once: Redis pub/sub. A message published while the
// receiving instance's subscription is down (Redis restarting, the
// connection killed, or dropped by Redis for a full output buffer) is
// lost. The sender still hears about what can be known: a recipient with
// no presence key, or on an instance nobody subscribes for (it died
// before its keys expired), or gone when the message arrived, is
// reported in a 410, after the message was accepted rather than at once
// (a group may get its 410 in two parts). What cannot be known (the gap)
// is detected and logged: go-redis resubscribes by itself, and each
// resubscription shows as a subscription reply after an error; the
// instance then logs "redis subscription renewed after a gap" and renews
// presence at once. Eviction notices lost in a gap are made good by the
// renewal: a session whose key now names another session is closed with
// 409 within a renewal interval. Nothing is replayed.
//
// Redis going away: the first failed call logs one line ("redis ADDR
// unreachable"), cross-instance work stops at once (recipients on other
// instances get 410 without waiting; broadcasts reach local users only;
// logins are local), local chat goes on. The renewal loop retries with
// backoff (100 ms doubling, capped at the renewal interval); once Redis
// answers and the subscription is live again it rewrites every local
// user's presence (a restarted Redis is empty) and logs one line ("redis
// ADDR reachable again"). An ID that logged in on two instances during
// the outage keeps the session whose instance re-registers first; the
// other gets 409. Unreachable at start is a start-up failure.
//
// A SIGKILLed instance: Redis drops its subscription at once, so messages
// to its users are 410 at once, and its users' IDs can log in anywhere at
// once (a newer login always wins). Their presence keys expire at most
// --presence-ttl after the kill (renewed at most a third of it before).
package chat

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
)

// readBufferSize is a chat connection's read buffer. Chat frames are small
// and larger ones are reassembled by the decoder, so a small buffer keeps
// 10,000 idle connections cheap.
const readBufferSize = 2 << 10

func init() {
	plugins.Register(plugins.Maker{
		Name:        "chat",
		Description: "a framed JSON chat server: login, direct, group and broadcast messages, heartbeats",
		Long: `A chat server speaking the framed JSON protocol. Every frame is a 12-byte
header of three big-endian uint32 (total length including the header,
protocol version, command id) and a UTF-8 JSON body. Replies carry the
version of the frame they answer; relayed messages carry the version the
recipient logged in with.

Client to server:
  1 verify     {"phone_number": ID}            ID: a JSON string or integer
  2 single     {"chat_from": ID, "chat_to": ID, "chat_content": "text"}
  3 group      the same with "chat_to": [ID, ...]
  4 broadcast  {"chat_from": ID, "chat_content": "text"} to every other
               logged-in user
  5 heartbeat  empty body
Server to client:
  101 verify result  {"code": 1}
  102/103/104        {"chat_from": ID, "chat_content": "text"}
  199 error          {"code": N, "error": "text"}

Only 1 and 5 are accepted before a successful verify. chat_from must be
the sender's own ID. Error codes (command 199):
  400 body is not JSON of the expected shape
  401 chat command before verify; with --users, wrong ID or password
  403 chat_from names someone else (nothing is relayed)
  404 unknown command id (the stream stays in sync)
  409 this ID logged in on another connection: this one is closed
  410 delivery failure: "undelivered": [IDs] lists the offline recipients
  411 frame length below 12: the connection is then closed
  413 frame length above --max-frame: the connection is then closed
  429 more than --max-errors protocol errors (400, 401, 403, 404) in one
      second: the connection is then closed

IDs are unauthenticated unless --users is given: anyone who sends verify
with an ID takes it over (the connection holding it gets 409) and receives
its messages, as with the classic server. With --users FILE (lines of
ID:bcrypt-hash, the format of ftp-lite's --password-file; make one with
htpasswd -nbB ID PASSWORD) a verify must carry the password too:
  1 verify     {"phone_number": ID, "password": "text"}
and one without the right password (or for an ID not in the file) gets
401 and changes nothing: no session is replaced.

Any frame counts as activity; a connection silent for longer than
--heartbeat-timeout (also one that never sent anything) is dropped and
logged. A frame must arrive whole within --frame-timeout of its first
byte, or the connection is dropped and logged: a client cannot hold a
frame's buffer by stalling in the middle of it. The buffer is allocated
once, at the length the header declares. The sweep runs every quarter of
the shorter timeout, so a client is dropped at most that much late. A
client whose unsent output exceeds --send-queue bytes (a slow reader) is
disconnected and logged; the others are not delayed by it.

At a stop, input already received is handled, and a message accepted
before the stop reaches every client connected then: connections close
only once every one has been asked to stop, and flush what they were sent
within the runner's --grace.

Protocol errors are logged, but of the warnings about one client address
only the first 5 of every 10 seconds; the rest are counted in one line
"suppressed N similar lines from ADDRESS", so a client repeating a fault
cannot rotate the log's history away.

--port takes a port number (served on --iface) or an endpoint string such
as tcp:8124:interface=::1 or unix:/run/chat.sock.

With --redis URL (redis://[user:password@]host:port/db, rediss:// for TLS,
redis://host:port?master_name=NAME for a Sentinel) instances sharing that
Redis act as one server: an ID is logged in once across all of them,
messages and broadcasts reach users on any instance, presence expires
--presence-ttl after an instance stops renewing it (a killed instance).
Redis pub/sub is at most once: a message published while an instance is
resubscribing is lost, and logged as a gap. If Redis is unreachable at
start the instance exits 1; if it goes away later, local chat goes on,
recipients on other instances get 410, one line logs the loss and one the
return, and the instance reconnects by itself.`,
		Options: options,
	})
}

func options(fs *pflag.FlagSet) plugins.Build {
	def := DefaultConfig()
	port := fs.StringP("port", "p", "8124", "port number or endpoint to listen on")
	iface := fs.String("iface", "localhost", "interface to listen on when --port is a number")
	maxFrame := fs.Int("max-frame", def.MaxFrame, "largest frame accepted, in bytes, header included")
	timeout := fs.Duration("heartbeat-timeout", def.HeartbeatTimeout, "drop a connection silent for this long (e.g. 30s, 2m)")
	frameTimeout := fs.Duration("frame-timeout", def.FrameTimeout, "drop a connection whose frame takes longer than this from its first byte to its last")
	queue := fs.Int("send-queue", def.QueueBytes, "disconnect a client with more than this many bytes of unsent output")
	users := fs.String("users", "", "password file of ID:bcrypt-hash lines; a verify must then carry the ID's password")
	maxErrors := fs.Int("max-errors", def.MaxErrors, "close a connection committing more than this many protocol errors in one second (0: never)")
	redisURL := fs.String("redis", "", "join the instances sharing this Redis: redis://[user:password@]host:port/db, rediss:// for TLS, ?master_name=M for a Sentinel")
	ttl := fs.Duration("presence-ttl", def.PresenceTTL, "with --redis: how long an instance's users stay online after it stops renewing them (renewed every third of it)")
	return func(env plugins.Env) (service.Service, error) {
		ep, err := endpoint(*port, *iface)
		if err != nil {
			return nil, err
		}
		cfg := Config{MaxFrame: *maxFrame, HeartbeatTimeout: *timeout, FrameTimeout: *frameTimeout, QueueBytes: *queue, MaxErrors: *maxErrors, UsersFile: *users,
			Redis: *redisURL, PresenceTTL: *ttl, MaxConnections: env.MaxConnections, Metrics: env.Metrics}
		if err := cfg.validate(); err != nil {
			return nil, err
		}
		return New(env.Name, ep, cfg, nil, env.Log), nil
	}
}

func (c Config) validate() error {
	switch {
	case c.MaxFrame < wire.HeaderLen || c.MaxFrame > 1<<30:
		return fmt.Errorf("invalid value %d for --max-frame: must be from %d to %d", c.MaxFrame, wire.HeaderLen, 1<<30)
	case c.HeartbeatTimeout <= 0:
		return fmt.Errorf("invalid value %v for --heartbeat-timeout: must be positive", c.HeartbeatTimeout)
	case c.FrameTimeout <= 0:
		return fmt.Errorf("invalid value %v for --frame-timeout: must be positive", c.FrameTimeout)
	case c.QueueBytes < c.MaxFrame:
		return fmt.Errorf("invalid value %d for --send-queue: must be at least --max-frame (%d)", c.QueueBytes, c.MaxFrame)
	case c.MaxErrors < 0:
		return fmt.Errorf("invalid value %d for --max-errors: must be 0 or more", c.MaxErrors)
	case c.Redis != "" && c.PresenceTTL < 300*time.Millisecond:
		return fmt.Errorf("invalid value %v for --presence-ttl: must be at least 300ms", c.PresenceTTL)
	}
	if c.Redis != "" {
		if _, err := parseRedis(c.Redis); err != nil {
			return fmt.Errorf("invalid value for --redis: %w", err)
		}
	}
	return nil
}

// endpoint turns --port and --iface into an endpoint.
func endpoint(port, iface string) (reactor.Endpoint, error) {
	if _, err := strconv.Atoi(port); err == nil {
		port = "tcp:" + port + ":interface=" + strings.ReplaceAll(iface, ":", `\:`)
	}
	ep, err := reactor.ParseEndpoint(port)
	if err != nil {
		return reactor.Endpoint{}, fmt.Errorf("invalid value for --port: %w", err)
	}
	return ep, nil
}

// Server is the plugin's service tree: the hub, then the listening port.
type Server struct {
	*service.Collection
	Hub  *Hub
	Port *reactor.Port
}

// Stop stops the port, then the hub, under ctx's deadline; the hub learns
// the deadline first, so connections asked to stop wait for each other
// only as long as leaves time to flush what they were sent.
func (s *Server) Stop(ctx context.Context) error {
	s.Hub.beginStop(ctx)
	return s.Collection.Stop(ctx)
}

// New returns the server's service tree; clock times heartbeats (nil means
// reactor.RealClock).
func New(name string, ep reactor.Endpoint, cfg Config, clock reactor.Clock, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	hub := NewHub(name, cfg, clock, log)
	port := reactor.NewPort("listener", ep, hub, log)
	port.System = name
	port.ReadBufferSize = readBufferSize
	port.MaxConnections = cfg.MaxConnections
	port.Metrics = cfg.Metrics.Port()
	port.MaxQueued = cfg.QueueBytes
	c := service.NewCollection(name, log)
	if t, err := parseRedis(cfg.Redis); cfg.Redis != "" && err == nil {
		rc := newRedisCluster(hub, t, cfg.PresenceTTL, log)
		hub.cluster = rc
		c.Add(rc)
	}
	c.Add(hub)
	c.Add(port)
	return &Server{Collection: c, Hub: hub, Port: port}
}
