package chat

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/passwd"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

// Config holds the server's tunables (the plugin's flags).
type Config struct {
	// MaxFrame is the largest frame accepted, header included.
	MaxFrame int
	// HeartbeatTimeout is how long a connection may stay silent.
	HeartbeatTimeout time.Duration
	// FrameTimeout is how long a frame may take from its first byte to its
	// last, so a client cannot hold a large buffer by stalling mid-frame.
	FrameTimeout time.Duration
	// QueueBytes bounds a connection's unsent output.
	QueueBytes int
	// MaxErrors is how many protocol errors a connection may commit in one
	// second before it is closed; 0 means no limit.
	MaxErrors int
	// UsersFile, if set, is a password file (ID:bcrypt-hash lines): a
	// verify must then carry the ID's password.
	UsersFile string
	// MaxConnections is the runner's --max-connections (0: no limit).
	MaxConnections int
	// Metrics counts connections and chat traffic (nil: not counted).
	Metrics *plugins.Metrics
	// Redis, if set, is the URL of the Redis server joining this instance
	// to the others using it (see redis.go); PresenceTTL is how long an
	// instance's users stay online there once it stops renewing them.
	Redis       string
	PresenceTTL time.Duration
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{MaxFrame: wire.DefaultMaxFrame, HeartbeatTimeout: 60 * time.Second, FrameTimeout: 10 * time.Second, QueueBytes: 256 << 10, MaxErrors: 50, PresenceTTL: 15 * time.Second}
}

// Hub is the chat server's state: every connection, the table of logged-in
// users, and the heartbeat sweep. It is a service (started before the port,
// stopped after it) and the port's Factory.
type Hub struct {
	name  string
	cfg   Config
	log   *slog.Logger
	clock reactor.Clock
	sweep *reactor.LoopingCall
	// warns bounds each client address's lines about protocol errors, and
	// closes its lines about connections closed for them: limited apart,
	// so the line closing a connection shows even after a burst of errors.
	warns, closes *logging.PeerLimiter

	// accounts holds the --users file's hashes (nil without it); dummy is
	// checked for unknown IDs, at the file's highest cost, so they take as
	// long as known ones; checks caps concurrent bcrypt comparisons.
	accounts passwd.Users
	dummy    []byte
	checks   chan struct{}

	// cluster reaches the users of other instances (alone without --redis).
	cluster cluster

	mu    sync.RWMutex
	users map[string]*peer   // verified ID -> connection
	conns map[*peer]struct{} // every connection, verified or not

	// A graceful stop, under mu: once the port asks the first connection
	// to stop, connections go on receiving until every one has been asked
	// (and has handled what it sent before that), or until settle has
	// passed; then released is set and all close. A message is relayed
	// before released, to everyone connected, or not at all.
	stopping bool
	unasked  int // tracked connections not yet asked to stop
	released bool
	settle   time.Duration
	settler  reactor.Timer

	metrics   *metrics     // nil: not counted
	overflows atomic.Int64 // peers dropped for a full queue, for tests
	timeouts  atomic.Int64 // peers dropped for silence (tests, twistd_chat_heartbeat_timeouts_total)
	stalls    atomic.Int64 // peers dropped for a stalled frame, for tests
}

// NewHub returns a hub timing heartbeats on clock; nil means
// reactor.RealClock and a nil logger slog.Default.
func NewHub(name string, cfg Config, clock reactor.Clock, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	if clock == nil {
		clock = reactor.RealClock
	}
	h := &Hub{
		name: name, cfg: cfg, log: log.With("system", name), clock: clock,
		users: map[string]*peer{}, conns: map[*peer]struct{}{},
		settle: maxSettle, checks: make(chan struct{}, runtime.NumCPU()),
		cluster: alone{},
	}
	h.warns = logging.NewPeerLimiter(h.log, 0, 0, clock.Now)
	h.closes = logging.NewPeerLimiter(h.log, 0, 0, clock.Now)
	h.sweep = reactor.NewLoopingCall(clock, h.dropSilent)
	h.metrics = newMetrics(cfg.Metrics.Registerer(), h)
	return h
}

// SweepInterval is how often silent connections and stalled frames are
// looked for: a quarter of the shorter timeout, so a connection is dropped
// at most a quarter of that timeout late.
func (c Config) SweepInterval() time.Duration {
	shorter := c.HeartbeatTimeout
	if c.FrameTimeout > 0 {
		shorter = min(shorter, c.FrameTimeout)
	}
	return max(shorter/4, time.Millisecond)
}

// Name returns "hub".
func (h *Hub) Name() string { return "hub" }

// PrivilegedStart reads the --users file while the process may still
// read files only the starting user can.
func (h *Hub) PrivilegedStart(context.Context) error {
	if h.cfg.UsersFile == "" || h.accounts != nil {
		return nil
	}
	users, err := passwd.Read("--users", h.cfg.UsersFile)
	if err != nil {
		return err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no such user"), users.MaxCost())
	if err != nil {
		return fmt.Errorf("--users %s: %w", h.cfg.UsersFile, err)
	}
	h.accounts, h.dummy = users, dummy
	return nil
}

// Start starts the heartbeat sweep (reading --users first if no
// privileged start did).
func (h *Hub) Start(ctx context.Context) error {
	if err := h.PrivilegedStart(ctx); err != nil {
		return err
	}
	return h.sweep.Start(h.cfg.SweepInterval(), false)
}

// authenticate reports whether password is id's in the --users file. It
// runs on the connection's goroutine, which waits for a free bcrypt slot:
// the verify's answer must be known before the connection's next frame is
// handled, and a waiting connection delays no other.
func (h *Hub) authenticate(id string, password *string) bool {
	if password == nil {
		return false
	}
	hash, known := h.accounts[id]
	if !known {
		hash = h.dummy
	}
	h.checks <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(*password))
	<-h.checks
	return known && err == nil
}

// maxSettle bounds how long connections asked to stop keep receiving
// while others have not been asked yet; it is only reached if a
// connection's goroutine is slow to take its stop request.
const maxSettle = time.Second

// beginStop sets how long connections may wait for the others to be asked
// to stop: maxSettle, or half the grace period left if that is shorter,
// so what they were sent is still flushed within the grace period.
func (h *Hub) beginStop(ctx context.Context) {
	settle := maxSettle
	if dl, ok := ctx.Deadline(); ok {
		settle = min(settle, time.Until(dl)/2)
	}
	h.mu.Lock()
	h.settle = settle
	h.mu.Unlock()
}

// stopRequested is a connection's graceful stop: it handles no more input
// and closes once every connection has been asked to stop, so a broadcast
// accepted from another connection before its stop request still reaches
// this one.
func (h *Hub) stopRequested(p *peer) {
	p.stopped.Store(true)
	h.mu.Lock()
	if !p.asked {
		p.asked = true
		h.unasked--
	}
	first := !h.stopping
	h.stopping = true
	if h.released {
		h.mu.Unlock()
		p.stop()
		return
	}
	if h.unasked > 0 {
		if first {
			h.settler = h.clock.AfterFunc(h.settle, func() { h.release(true) })
		}
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.release(false)
}

// release closes every connection after what is queued for it is written.
// late says the settle time ran out with some connections not yet asked
// to stop.
func (h *Hub) release(late bool) {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return
	}
	h.released = true
	if h.settler != nil {
		h.settler.Stop()
	}
	unasked := h.unasked
	all := make([]*peer, 0, len(h.conns))
	for p := range h.conns {
		all = append(all, p)
	}
	h.mu.Unlock()
	if late {
		h.log.Warn(fmt.Sprintf("%d connection(s) not yet asked to stop after %v: closing all; messages arriving from now on are not relayed", unasked, h.settle))
	}
	for _, p := range all {
		p.stop()
	}
}

// Stop stops the sweep (after the port has closed every connection) and
// reports the warnings still suppressed.
func (h *Hub) Stop(context.Context) error {
	h.release(false)
	h.sweep.Stop()
	h.warns.Flush(true)
	h.closes.Flush(true)
	return nil
}

// BuildProtocol makes the protocol of one connection.
func (h *Hub) BuildProtocol(net.Addr) reactor.Protocol {
	return &peer{hub: h, dec: wire.Decoder{Max: h.cfg.MaxFrame}}
}

// Online returns how many users are logged in.
func (h *Hub) Online() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users)
}

func (h *Hub) track(p *peer) {
	h.mu.Lock()
	h.conns[p] = struct{}{}
	h.unasked++
	h.mu.Unlock()
}

// forget removes a closed connection, and its ID unless another connection
// has taken it since.
func (h *Hub) forget(p *peer) {
	h.mu.Lock()
	delete(h.conns, p)
	var left *string
	if k := p.key.Load(); k != nil && h.users[*k] == p {
		delete(h.users, *k)
		left = k
	}
	if !p.asked {
		p.asked = true
		h.unasked--
	}
	last := h.stopping && !h.released && h.unasked == 0
	h.mu.Unlock()
	if left != nil {
		h.cluster.release(*left, p.claim)
	}
	if last {
		h.release(false)
	}
}

// login binds id to p and queues the verify result. An older connection
// holding id is told and closed.
func (h *Hub) login(p *peer, id wire.ID) {
	claim := h.cluster.claim(id.Key)
	h.mu.Lock()
	if k := p.key.Load(); k != nil && *k != id.Key && h.users[*k] == p {
		delete(h.users, *k)
		defer h.cluster.release(*k, p.claim)
	}
	old := h.users[id.Key]
	var oldVersion uint32
	if old != nil {
		oldVersion = old.loginVersion
	}
	h.users[id.Key] = p
	p.claim = claim
	p.loginVersion = p.version
	key := id.Key // not &id.Key, which would keep all of id on the heap
	p.key.Store(&key)
	// Queued under the lock so no relayed message can overtake it.
	p.reply(wire.CmdVerifyResult, verifiedBody)
	h.mu.Unlock()
	if old != nil && old != p {
		old.stopped.Store(true)
		old.logger().Info("ID logged in on another connection; closing this one", "id", id.Key, "new_peer", p.t.RemoteAddr().String())
		old.send(wire.AppendFrame(nil, oldVersion, wire.CmdError, replacedBody))
		old.stop()
	}
	p.logger().Info("logged in", "id", id.Key)
}

var verifiedBody = []byte(`{"code":1}`)

var replacedBody = []byte(fmt.Sprintf(`{"code":%d,"error":"logged in from another connection"}`, wire.CodeReplaced))

// deliver queues m to every recipient and returns those not reached;
// from is the local sender, nil for a message from another instance.
func (h *Hub) deliver(from *peer, to []wire.ID, m *message) (missed []wire.ID) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.released {
		return nil // stopped: the sender is closing too
	}
	var seen map[string]bool // a group's recipients, each served once
	if len(to) > 1 {
		seen = make(map[string]bool, len(to))
	}
	for _, id := range to {
		if seen != nil {
			if seen[id.Key] {
				continue
			}
			seen[id.Key] = true
		}
		if !h.relay(from, h.users[id.Key], m) {
			missed = append(missed, id)
		}
	}
	return missed
}

// broadcast queues m to every logged-in user but the sender.
func (h *Hub) broadcast(from *peer, m *message) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.released {
		return // some recipients may be closing already: none or all
	}
	for _, q := range h.users {
		if q != from {
			h.relay(from, q, m)
		}
	}
}

// dropSilent drops every connection silent for longer than the heartbeat
// timeout, logged in or not, and every one whose frame in progress has
// taken longer than the frame timeout.
func (h *Hub) dropSilent() {
	// The sweep is the hub's periodic task, so it also reports the
	// warnings suppressed from clients that went quiet.
	h.warns.Flush(false)
	h.closes.Flush(false)
	now := h.clock.Now()
	limit := now.Add(-h.cfg.HeartbeatTimeout).UnixNano()
	frameLimit := now.Add(-h.cfg.FrameTimeout).UnixNano()
	var late, stalled []*peer
	h.mu.RLock()
	for p := range h.conns {
		switch {
		case p.stopped.Load():
		case p.lastActive.Load() < limit:
			late = append(late, p)
		case h.cfg.FrameTimeout > 0 && p.frameStart.Load() != 0 && p.frameStart.Load() < frameLimit:
			stalled = append(stalled, p)
		}
	}
	h.mu.RUnlock()
	for _, p := range stalled {
		h.closes.Warn(p.logger(), p.addrKey(), fmt.Sprintf("frame incomplete after %v (%d bytes of it received; --frame-timeout %v): dropping",
			now.Sub(time.Unix(0, p.frameStart.Load())).Round(time.Millisecond), p.buffered.Load(), h.cfg.FrameTimeout), "id", p.idForLog())
		h.stalls.Add(1)
		p.drop()
	}
	for _, p := range late {
		silent := now.Sub(time.Unix(0, p.lastActive.Load())).Round(time.Millisecond)
		p.logger().Info(fmt.Sprintf("no frame for %v (heartbeat timeout %v): dropping", silent, h.cfg.HeartbeatTimeout), "id", p.idForLog())
		h.timeouts.Add(1)
		p.drop()
	}
}
