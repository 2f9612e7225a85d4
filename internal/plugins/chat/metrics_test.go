package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/testutil"
)

// The chat series count what real clients do: frames by command, one
// delivery per recipient reached, one failure per offline recipient, the
// users online, and connections dropped for silence.
func TestChatMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.HeartbeatTimeout = 30 * time.Second
	cfg.Metrics = plugins.NewMetricSet(reg).For("chat")
	_, addr, _ := startServerClock(t, cfg, clock)
	cs := loggedIn(t, addr, `"ann"`, `"bob"`)
	ann, bob := cs[0], cs[1]
	ann.send(1, wire.CmdSingle, `{"chat_from":"ann","chat_to":"bob","chat_content":"hi"}`)
	bob.expect(1, wire.CmdSingleMsg)
	ann.send(1, wire.CmdSingle, `{"chat_from":"ann","chat_to":"cy","chat_content":"hi"}`)
	ann.expectError(1, wire.CodeUndelivered)
	ann.send(1, wire.CmdGroup, `{"chat_from":"ann","chat_to":["bob","cy"],"chat_content":"all"}`)
	bob.expect(1, wire.CmdGroupMsg)
	ann.expectError(1, wire.CodeUndelivered)
	bob.send(1, wire.CmdBroadcast, `{"chat_from":"bob","chat_content":"hey"}`)
	ann.expect(1, wire.CmdBroadcastMsg)
	bob.heartbeat()
	bob.sync() // an unknown command
	ann.sync()

	got := testutil.Samples(t, reg)
	for series, want := range map[string]float64{
		`twistd_chat_users_online{service="chat"}`:                                2,
		`twistd_chat_frames_received_total{command="verify",service="chat"}`:      2,
		`twistd_chat_frames_received_total{command="single",service="chat"}`:      2,
		`twistd_chat_frames_received_total{command="group",service="chat"}`:       1,
		`twistd_chat_frames_received_total{command="broadcast",service="chat"}`:   1,
		`twistd_chat_frames_received_total{command="heartbeat",service="chat"}`:   1,
		`twistd_chat_frames_received_total{command="unknown",service="chat"}`:     2,
		`twistd_chat_messages_delivered_total{service="chat"}`:                    3,
		`twistd_chat_deliveries_failed_total{reason="offline",service="chat"}`:    2,
		`twistd_chat_deliveries_failed_total{reason="queue_full",service="chat"}`: 0,
		`twistd_chat_heartbeat_timeouts_total{service="chat"}`:                    0,
		`twistd_connections_accepted_total{service="chat"}`:                       2,
		`twistd_connections_open{service="chat"}`:                                 2,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s: %v (present %v), want %v", series, v, ok, want)
		}
	}

	// Both go silent past the timeout: the next sweep drops them.
	clock.Advance(31 * time.Second)
	clock.Advance(cfg.SweepInterval())
	ann.expectClosed()
	bob.expectClosed()
	waitFor(t, "both counted as timed out and offline", func() bool {
		got := testutil.Samples(t, reg)
		return got[`twistd_chat_heartbeat_timeouts_total{service="chat"}`] == 2 && got[`twistd_chat_users_online{service="chat"}`] == 0
	})
}

// A recipient that reads nothing overflows its queue: that delivery
// counts as queue_full, later ones as closing or offline, and every
// message sent is either delivered or failed.
func TestChatMetricsQueueFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MaxFrame = 16 << 10
	cfg.QueueBytes = 64 << 10
	cfg.Metrics = plugins.NewMetricSet(reg).For("chat")
	_, addr, _ := startServer(t, cfg)
	slow := dialTinyBuffer(t, addr)
	slow.login(`"slow"`)
	sender := loggedIn(t, addr, `"sender"`)[0]
	msg := `{"chat_from":"sender","chat_to":"slow","chat_content":"` + strings.Repeat("x", 15<<10) + `"}`
	full := `twistd_chat_deliveries_failed_total{reason="queue_full",service="chat"}`
	sent := 0
	for ; sent < 2000 && testutil.Samples(t, reg)[full] == 0; sent++ {
		sender.send(1, wire.CmdSingle, msg)
	}
	// Read up to an unknown command's reply: then the server has handled
	// every message sent before it.
	sender.send(9, 999, "")
	for {
		f := sender.next()
		if f.Command == wire.CmdError && strings.Contains(string(f.Body), `"code":404`) {
			break
		}
	}
	got := testutil.Samples(t, reg)
	delivered := got[`twistd_chat_messages_delivered_total{service="chat"}`]
	failed := got[full] + got[`twistd_chat_deliveries_failed_total{reason="closing",service="chat"}`] + got[`twistd_chat_deliveries_failed_total{reason="offline",service="chat"}`]
	if got[full] != 1 || delivered == 0 || delivered+failed != float64(sent) {
		t.Fatalf("after %d messages: delivered %v, failed %v of which queue_full %v", sent, delivered, failed, got[full])
	}
}
