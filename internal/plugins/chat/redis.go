package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

// redisTimeout bounds every Redis call made for a client's frame, so that
// a Redis that stops answering turns into 410s within a second rather
// than stalling senders.
const redisTimeout = time.Second

// redisCluster joins instances through one Redis server.
//
// Keys and channels, under the prefix "twistd:chat:":
//
//	user:ID    the token of the session holding ID ("INSTANCE:N"),
//	           expiring after --presence-ttl unless renewed
//	inst:INST  channel of one instance: direct and group messages for its
//	           users, and notices (409 eviction, late 410)
//	all        channel of broadcasts, one publish per broadcast
//
// Every instance renews its users' keys every third of the TTL, with a
// script that also finds sessions replaced elsewhere (a notice lost in a
// gap) and keys lost with a restarted Redis (and writes them again).
type redisCluster struct {
	hub  *Hub
	log  *slog.Logger
	rdb  *redis.Client
	addr string // for log lines: never the password
	self string // this instance's random ID
	ttl  time.Duration
	// policy spaces reconnection attempts (capped at the renewal
	// interval, so presence is back before it would expire).
	policy reactor.RetryPolicy

	seq atomic.Uint64
	// published and received count publishes to Redis and the messages
	// other instances sent here, for the metrics (countTo).
	published, received atomic.Uint64
	// up is false while Redis is unreachable: cross-instance work is then
	// skipped at once (remote recipients are undelivered) instead of
	// waiting for a timeout per message.
	up atomic.Bool
	// subscribed is true while the subscription is live.
	subscribed atomic.Bool
	// changed serialises the "down" and "back" lines.
	changed sync.Mutex

	// psMu guards ps, the subscription, so that Stop can close it under
	// a read that would otherwise wait out its timeout.
	psMu sync.Mutex
	ps   *redis.PubSub

	wake   chan struct{} // asks the renewal loop to run now
	outbox chan outgoing
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const redisPrefix = "twistd:chat:"

// redisTarget is a parsed --redis: redis:// or rediss:// (TLS), or, with
// a master_name query parameter, the address of a Sentinel (more with
// addr=HOST:PORT) that names the master.
type redisTarget struct {
	opt      *redis.Options
	failover *redis.FailoverOptions
}

func parseRedis(url string) (redisTarget, error) {
	if strings.Contains(url, "master_name=") {
		fo, err := redis.ParseFailoverURL(url)
		return redisTarget{failover: fo}, err
	}
	opt, err := redis.ParseURL(url)
	return redisTarget{opt: opt}, err
}

// String names the server for log lines, without credentials.
func (t redisTarget) String() string {
	if t.failover != nil {
		return "sentinel " + strings.Join(t.failover.SentinelAddrs, ",") + " master " + t.failover.MasterName
	}
	return t.opt.Addr
}

// client returns a client that fails fast: no retries, short timeouts.
// Retrying is the renewal loop's business, and a sender waiting on a
// dead Redis would wait once per message.
func (t redisTarget) client() *redis.Client {
	if t.failover != nil {
		fo := *t.failover
		fo.DialerRetries, fo.MaxRetries, fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout, fo.PoolTimeout = 1, -1, redisTimeout, redisTimeout, redisTimeout, redisTimeout
		return redis.NewFailoverClient(&fo)
	}
	opt := *t.opt
	opt.DialerRetries, opt.MaxRetries, opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = 1, -1, redisTimeout, redisTimeout, redisTimeout, redisTimeout
	return redis.NewClient(&opt)
}

// redisLog turns go-redis's own lines (a dial that failed, a pub/sub
// reconnect) into debug lines: what they report reaches the log once, as
// the cluster's "unreachable" and "reachable again" lines.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "system", "go-redis")
}

// setRedisLog installs redisLog once: go-redis has one logger per process.
var setRedisLog sync.Once

func newRedisCluster(hub *Hub, t redisTarget, ttl time.Duration, log *slog.Logger) *redisCluster {
	setRedisLog.Do(func() { redis.SetLogger(redisLog{log}) })
	var b [8]byte
	rand.Read(b[:])
	r := &redisCluster{
		hub: hub, log: log.With("system", hub.name), addr: t.String(), rdb: t.client(),
		self: hex.EncodeToString(b[:]), ttl: ttl, wake: make(chan struct{}, 1),
		outbox: make(chan outgoing, outboxSize),
		policy: reactor.BackoffPolicy(100*time.Millisecond, 2, ttl/3, nil),
	}
	r.countTo(hub.cfg.Metrics.Registerer())
	return r
}

// Name returns "redis".
func (r *redisCluster) Name() string { return "redis" }

func (r *redisCluster) userKey(id string) string   { return redisPrefix + "user:" + id }
func (r *redisCluster) channel(inst string) string { return redisPrefix + "inst:" + inst }

const allChannel = redisPrefix + "all"

// Start connects and subscribes, or fails: an instance that cannot reach
// Redis at start would be an island that believes it is in a cluster.
func (r *redisCluster) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*redisTimeout)
	defer cancel()
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("--redis %s: %w", r.addr, err)
	}
	ps := r.rdb.Subscribe(ctx, r.channel(r.self), allChannel)
	for confirmed := 0; confirmed < 2; {
		msg, err := ps.Receive(ctx)
		if err != nil {
			ps.Close()
			return fmt.Errorf("--redis %s: subscribe: %w", r.addr, err)
		}
		if _, ok := msg.(*redis.Subscription); ok {
			confirmed++
		}
	}
	r.subscribed.Store(true)
	r.up.Store(true)
	r.ps = ps
	run, stop := context.WithCancel(context.Background())
	r.cancel = stop
	r.wg.Go(func() { r.receive(run, ps) })
	r.wg.Go(func() { r.renewLoop(run) })
	r.wg.Go(func() { r.publishLoop(run) })
	r.log.Info(fmt.Sprintf("joined the instances on redis %s as instance %s; presence expires %v after an instance stops renewing it", r.addr, r.self, r.ttl))
	return nil
}

// Stop ends the subscription and the renewal loop; the hub, stopped
// before, has released its users' keys.
func (r *redisCluster) Stop(context.Context) error {
	if r.cancel != nil {
		r.cancel()
		r.psMu.Lock()
		r.ps.Close()
		r.psMu.Unlock()
		r.wg.Wait()
	}
	return r.rdb.Close()
}

// down records that Redis failed: once, in one line, until it is back.
func (r *redisCluster) down(err error) {
	r.changed.Lock()
	defer r.changed.Unlock()
	if r.up.CompareAndSwap(true, false) {
		r.log.Error(fmt.Sprintf("redis %s unreachable: %v; local chat goes on, messages to other instances' users are undelivered (410) until it is back; reconnecting", r.addr, err))
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// envelope is what instances publish to each other.
type envelope struct {
	// Op is "msg" (to users of the receiving instance), "all" (a
	// broadcast), "kick" (ID logged in elsewhere: close session Token)
	// or "missed" (tell session Token of ID that To were undelivered).
	Op   string            `json:"op"`
	Cmd  uint32            `json:"cmd,omitempty"`
	Body json.RawMessage   `json:"body,omitempty"`
	To   []json.RawMessage `json:"to,omitempty"`
	// ID and Token name a session: the sender of a "msg", the target of a
	// "kick" or "missed".
	ID     string `json:"id,omitempty"`
	Token  string `json:"token,omitempty"`
	Origin string `json:"origin,omitempty"`
}

func (r *redisCluster) publish(ctx context.Context, channel string, e *envelope) (int64, error) {
	b, _ := json.Marshal([]*envelope{e})
	r.published.Add(1)
	n, err := r.rdb.Publish(ctx, channel, b).Result()
	if err != nil {
		r.down(err)
	}
	return n, err
}

// instanceOf returns the instance part of a session token.
func instanceOf(token string) string {
	inst, _, _ := strings.Cut(token, ":")
	return inst
}

func (r *redisCluster) claim(id string) string {
	token := r.self + ":" + strconv.FormatUint(r.seq.Add(1), 10)
	if !r.up.Load() {
		return token // written by the renewal loop once Redis is back
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	old, err := r.rdb.SetArgs(ctx, r.userKey(id), token, redis.SetArgs{TTL: r.ttl, Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		r.down(err)
	case instanceOf(old) != r.self:
		// If that instance is dead nobody receives this, and nothing is
		// lost: its session died with it.
		r.publish(ctx, r.channel(instanceOf(old)), &envelope{Op: "kick", ID: id, Token: old})
	}
	return token
}

// releaseScript deletes a presence key only if it still names the
// session leaving: a newer login elsewhere keeps its key.
var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func (r *redisCluster) release(id, token string) {
	if !r.up.Load() {
		return // the key expires by itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := releaseScript.Run(ctx, r.rdb, []string{r.userKey(id)}, token).Err(); err != nil {
		r.down(err)
	}
}

// outgoing is one message waiting in the outbox: a broadcast if to is
// nil, else a direct or group message from session token of ID from.
type outgoing struct {
	cmd         uint32
	body        []byte
	to          []wire.ID
	from, token string
}

// outboxSize bounds the messages waiting to be published; a sender
// finding it full waits (its connection is then not read), which is the
// back-pressure a slow Redis exerts.
const outboxSize = 8192

// maxBatch bounds the messages published in one pipeline.
const maxBatch = 512

func (r *redisCluster) deliver(to []wire.ID, m *message, from, token string) []wire.ID {
	if !r.up.Load() {
		return to
	}
	r.outbox <- outgoing{cmd: m.cmd, body: m.body, to: slices.Clone(to), from: from, token: token}
	return nil
}

func (r *redisCluster) broadcast(m *message) {
	if r.up.Load() {
		r.outbox <- outgoing{cmd: m.cmd, body: m.body}
	}
}

// publishLoop empties the outbox: what is queued goes out in one
// pipeline, in queue order, so one sender's messages to one recipient
// stay in order (one connection, and Redis runs a pipeline in order).
// Senders never wait on the network; recipients found missing are
// reported back to their senders (410) once the pipeline's answer is in.
func (r *redisCluster) publishLoop(ctx context.Context) {
	batch := make([]outgoing, 0, maxBatch)
	for {
		select {
		case o := <-r.outbox:
			batch = append(batch[:0], o)
		case <-ctx.Done():
			// What senders queued before the stop still goes out.
			for {
				select {
				case o := <-r.outbox:
					batch = append(batch, o)
					continue
				default:
				}
				break
			}
			flush, cancel := context.WithTimeout(context.Background(), redisTimeout)
			r.publishBatch(flush, batch)
			cancel()
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case o := <-r.outbox:
				batch = append(batch, o)
			default:
				break more
			}
		}
		r.publishBatch(ctx, batch)
		clear(batch)
	}
}

// publishBatch publishes batch (see route) and reports recipients
// reached nowhere (no session, a session here that is gone since the
// local lookup, or an instance nobody subscribes for: it died before its
// keys expired) to their senders as 410.
func (r *redisCluster) publishBatch(ctx context.Context, batch []outgoing) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	missed := make([][]json.RawMessage, len(batch))
	if err := r.route(ctx, batch, missed); err != nil && !errors.Is(err, errDown) && !isRedisError(err) {
		r.down(err)
	}
	for i, o := range batch {
		if len(missed[i]) > 0 {
			r.hub.undelivered(o.from, o.token, missed[i])
		}
	}
}

// errDown is route's answer while Redis is known to be unreachable.
var errDown = errors.New("redis unreachable")

// maxEnvelopes bounds the bytes of one publish: Redis disconnects a
// subscriber whose output buffer passes 8 MiB for 60 s or 32 MiB at once
// (client-output-buffer-limit pubsub), which would be a gap.
const maxEnvelopes = 256 << 10

// route does publishBatch's work, recording in missed[i] the recipients
// of batch[i] not reached; on an error every direct message counts as
// not delivered. One MGET looks up every recipient of the batch; then
// the direct messages for one instance go out as one publish (a JSON
// array of envelopes, in batch order), flushed before each broadcast so
// that one sender's direct messages and broadcasts keep their order.
func (r *redisCluster) route(ctx context.Context, batch []outgoing, missed [][]json.RawMessage) (err error) {
	defer func() {
		if err != nil {
			for i, o := range batch {
				missed[i] = missed[i][:0]
				for _, id := range o.to {
					missed[i] = append(missed[i], id.Raw)
				}
			}
		}
	}()
	if !r.up.Load() {
		return errDown
	}
	var keys []string
	for _, o := range batch {
		for _, id := range o.to {
			keys = append(keys, r.userKey(id.Key))
		}
	}
	var owners []any
	if len(keys) > 0 {
		if owners, err = r.rdb.MGet(ctx, keys...).Result(); err != nil {
			return err
		}
	}
	// part is what one publish carries for batch[i]: recipients to.
	type part struct {
		i  int
		to []json.RawMessage
	}
	type pending struct {
		envs  []envelope
		parts []part
		size  int
	}
	type sent struct {
		cmd   *redis.IntCmd
		parts []part
	}
	var pubs []sent
	byInst := map[string]*pending{}
	var order []string
	pipe := r.rdb.Pipeline()
	publish := func(inst string) {
		p := byInst[inst]
		b, _ := json.Marshal(p.envs)
		pubs = append(pubs, sent{pipe.Publish(ctx, r.channel(inst), b), p.parts})
		r.published.Add(1)
		delete(byInst, inst)
	}
	flush := func() {
		for _, inst := range order {
			if byInst[inst] != nil {
				publish(inst)
			}
		}
		order = order[:0]
	}
	k := 0
	for i, o := range batch {
		if o.to == nil {
			flush()
			b, _ := json.Marshal([]envelope{{Op: "all", Cmd: o.cmd, Body: o.body, Origin: r.self}})
			pipe.Publish(ctx, allChannel, b)
			r.published.Add(1)
			continue
		}
		mine := map[string][]json.RawMessage{}
		var insts []string
		for _, id := range o.to {
			s, _ := owners[k].(string)
			k++
			inst := instanceOf(s)
			if s == "" || inst == r.self {
				missed[i] = append(missed[i], id.Raw)
				continue
			}
			if mine[inst] == nil {
				insts = append(insts, inst)
			}
			mine[inst] = append(mine[inst], id.Raw)
		}
		for _, inst := range insts {
			p := byInst[inst]
			if p == nil {
				p = &pending{}
				byInst[inst] = p
				order = append(order, inst)
			}
			p.envs = append(p.envs, envelope{Op: "msg", Cmd: o.cmd, Body: o.body, To: mine[inst], ID: o.from, Token: o.token})
			p.parts = append(p.parts, part{i, mine[inst]})
			if p.size += len(o.body); p.size > maxEnvelopes {
				publish(inst)
			}
		}
	}
	flush()
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for _, p := range pubs {
		if p.cmd.Val() == 0 {
			for _, pt := range p.parts {
				missed[pt.i] = append(missed[pt.i], pt.to...)
			}
		}
	}
	return nil
}

// isRedisError tells an error reply (Redis answered) from a failed
// connection.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// receive handles what other instances publish, in the order Redis
// delivers it (one connection, so one sender's messages stay in order).
// go-redis redials and resubscribes by itself after an error; a
// resubscription means messages published meanwhile were lost.
func (r *redisCluster) receive(ctx context.Context, ps *redis.PubSub) {
	idle, failures, confirmed := 0, 0, 0
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.ttl/3)
		if ctx.Err() != nil {
			return
		}
		var ne net.Error
		switch {
		case err != nil && errors.As(err, &ne) && ne.Timeout() && idle == 0:
			// Quiet: a ping proves the connection is alive.
			idle++
			ps.Ping(ctx)
			continue
		case err != nil:
			// A dead connection, or no pong: start over on a new one.
			r.subscribed.Store(false)
			r.down(err)
			confirmed, idle = 0, 0
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.policy(failures)):
			}
			failures++
			if ne != nil && ne.Timeout() {
				r.psMu.Lock()
				if ctx.Err() != nil { // Stop has closed ps
					r.psMu.Unlock()
					return
				}
				ps.Close()
				ps = r.rdb.Subscribe(ctx, r.channel(r.self), allChannel)
				r.ps = ps
				r.psMu.Unlock()
			}
			continue
		}
		idle, failures = 0, 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if confirmed++; confirmed == 2 && !r.subscribed.Load() {
				r.log.Warn("redis subscription renewed after a gap: messages other instances published during it were lost (pub/sub is at most once)")
				r.subscribed.Store(true)
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		case *redis.Message:
			r.handle(ctx, m.Payload)
		}
	}
}

// handle handles one publish: a JSON array of envelopes.
func (r *redisCluster) handle(ctx context.Context, payload string) {
	var es []envelope
	if err := json.Unmarshal([]byte(payload), &es); err != nil {
		r.log.Warn("ignoring a malformed message on redis", "err", err)
		return
	}
	for i := range es {
		r.handleOne(ctx, &es[i])
	}
}

func (r *redisCluster) handleOne(ctx context.Context, e *envelope) {
	switch e.Op {
	case "all":
		if e.Origin != r.self {
			r.received.Add(1)
			r.hub.broadcast(nil, newMessage(e.Cmd, e.Body))
		}
	case "msg":
		r.received.Add(1)
		to := make([]wire.ID, 0, len(e.To))
		for _, raw := range e.To {
			if id, err := wire.ParseID(raw); err == nil {
				to = append(to, id)
			}
		}
		missed := r.hub.deliver(nil, to, newMessage(e.Cmd, e.Body))
		if len(missed) == 0 {
			return
		}
		n := &envelope{Op: "missed", ID: e.ID, Token: e.Token}
		for _, id := range missed {
			n.To = append(n.To, id.Raw)
		}
		ctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		r.publish(ctx, r.channel(instanceOf(e.Token)), n)
	case "kick":
		r.hub.evict(e.ID, e.Token)
	case "missed":
		r.hub.undelivered(e.ID, e.Token, e.To)
	}
}

// renewScript renews a presence key still naming the session, or writes
// it again if it is gone (expired while Redis was unreachable, or lost
// with a restarted Redis); it returns 0 if another session holds the ID,
// which means this one was replaced and the notice was lost.
var renewScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`)

// renewLoop renews presence every third of the TTL, and retries with
// backoff while Redis is unreachable; it declares Redis back only once
// presence is written again and the subscription is live.
func (r *redisCluster) renewLoop(ctx context.Context) {
	interval := r.ttl / 3
	failures := 0
	for {
		delay := interval
		if !r.up.Load() {
			delay = min(r.policy(failures), interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-time.After(delay):
		}
		n, err := r.renew(ctx)
		if err != nil {
			r.down(err)
			failures++
			continue
		}
		failures = 0
		r.changed.Lock()
		if !r.up.Load() && r.subscribed.Load() {
			r.up.Store(true)
			r.log.Info(fmt.Sprintf("redis %s reachable again: presence of %d user(s) written, messages to other instances flow again", r.addr, n))
		}
		r.changed.Unlock()
	}
}

// renew runs renewScript for every user here in one pipeline and evicts
// those another session took over.
func (r *redisCluster) renew(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	claims := r.hub.claims()
	if len(claims) == 0 {
		return 0, r.rdb.Ping(ctx).Err()
	}
	ids := make([]string, 0, len(claims))
	cmds := make([]*redis.Cmd, 0, len(claims))
	ttl := strconv.FormatInt(r.ttl.Milliseconds(), 10)
	pipe := r.rdb.Pipeline()
	for id, token := range claims {
		ids = append(ids, id)
		cmds = append(cmds, renewScript.Eval(ctx, pipe, []string{r.userKey(id)}, token, ttl))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	for i, c := range cmds {
		if v, _ := c.Int(); v == 0 {
			r.hub.evict(ids[i], claims[ids[i]])
		}
	}
	return len(claims), nil
}
