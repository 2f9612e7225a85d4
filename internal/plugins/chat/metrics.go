package chat

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
)

// Why a relayed message did not reach a recipient, as
// twistd_chat_deliveries_failed_total counts it.
const (
	failOffline  = "offline"    // no connection holds the ID
	failFull     = "queue_full" // the recipient's queue overflowed: it was disconnected
	failClosing  = "closing"    // the recipient's connection is closing
	frameUnknown = "unknown"    // frames_received_total's label for other command ids
)

// metrics are the chat series of one hub; a nil *metrics counts nothing.
// Children are made up front, so counting is one atomic add and never a
// label lookup.
type metrics struct {
	frames    [wire.CmdHeartbeat + 1]prometheus.Counter // by command id; 0: unknown
	delivered prometheus.Counter
	failed    map[string]prometheus.Counter
}

// newMetrics registers the hub's series with reg; nil reg, nil metrics.
func newMetrics(reg prometheus.Registerer, h *Hub) *metrics {
	if reg == nil {
		return nil
	}
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twistd_chat_frames_received_total", Help: "Frames received, by command: verify, single, group, broadcast, heartbeat, unknown.",
	}, []string{"command"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twistd_chat_deliveries_failed_total", Help: "Relayed messages that did not reach a recipient, by reason: offline, queue_full, closing.",
	}, []string{"reason"})
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twistd_chat_messages_delivered_total", Help: "Relayed messages queued to a recipient (one per recipient).",
		}),
		failed: map[string]prometheus.Counter{},
	}
	for cmd, name := range map[uint32]string{0: frameUnknown, wire.CmdVerify: "verify", wire.CmdSingle: "single", wire.CmdGroup: "group", wire.CmdBroadcast: "broadcast", wire.CmdHeartbeat: "heartbeat"} {
		m.frames[cmd] = frames.WithLabelValues(name)
	}
	for _, r := range []string{failOffline, failFull, failClosing} {
		m.failed[r] = failed.WithLabelValues(r)
	}
	reg.MustRegister(frames, failed, m.delivered,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twistd_chat_users_online", Help: "Users logged in on this instance.",
		}, func() float64 { return float64(h.Online()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twistd_chat_heartbeat_timeouts_total", Help: "Connections dropped for silence longer than --heartbeat-timeout.",
		}, func() float64 { return float64(h.timeouts.Load()) }),
	)
	return m
}

// frame counts a received frame by its command id.
func (m *metrics) frame(cmd uint32) {
	if m == nil {
		return
	}
	if int(cmd) >= len(m.frames) {
		cmd = 0
	}
	m.frames[cmd].Inc()
}

// relay queues m's frame to q (nil: the recipient is offline) from the
// local peer from (nil: from another instance, or the hub) and counts
// the outcome; it reports whether the frame was queued.
func (h *Hub) relay(from, q *peer, m *message) bool {
	if q == nil {
		h.metrics.fail(failOffline)
		return false
	}
	switch q.enqueue(from, m.frame(q.loginVersion)) {
	case queued:
		if h.metrics != nil {
			h.metrics.delivered.Inc()
		}
		return true
	case queueOverflow:
		h.metrics.fail(failFull)
	default:
		h.metrics.fail(failClosing)
	}
	return false
}

func (m *metrics) fail(reason string) {
	if m != nil {
		m.failed[reason].Inc()
	}
}

// countTo registers the Redis series of an instance that joined others:
// whether Redis answers, publishes to it, and messages from other
// instances delivered here (broadcasts and direct or group messages).
func (r *redisCluster) countTo(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twistd_chat_redis_up", Help: "1 while the Redis joining the instances answers, else 0.",
		}, func() float64 {
			if r.up.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twistd_chat_redis_publishes_total", Help: "Publishes to Redis (a broadcast is one; direct and group messages are batched per instance).",
		}, func() float64 { return float64(r.published.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "twistd_chat_remote_messages_total", Help: "Messages other instances sent here through Redis (broadcasts, direct and group messages).",
		}, func() float64 { return float64(r.received.Load()) }),
	)
}
