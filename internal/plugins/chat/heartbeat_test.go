package chat

import (
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

func TestHeartbeatTimeout(t *testing.T) {
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.HeartbeatTimeout = 30 * time.Second
	srv, addr, logs := startServerClock(t, cfg, clock)
	cs := loggedIn(t, addr, `"talker"`, `"quiet"`, `"beater"`)
	talker, quiet, beater := cs[0], cs[1], cs[2]
	mute := dial(t, addr) // connects and never sends anything
	// ConnectionMade (which starts mute's silence) must run before time moves.
	waitFor(t, "4 connections", func() bool {
		srv.Hub.mu.RLock()
		defer srv.Hub.mu.RUnlock()
		return len(srv.Hub.conns) == 4
	})

	// 20 s in: everyone but mute and quiet is heard from.
	clock.Advance(20 * time.Second)
	beater.heartbeat()
	talker.send(1, wire.CmdBroadcast, `{"chat_from":"talker","chat_content":"x"}`)
	quiet.expect(1, wire.CmdBroadcastMsg) // receiving is not activity
	beater.expect(1, wire.CmdBroadcastMsg)
	beater.sync()
	talker.sync()

	// 31 s: quiet (last frame at 0 s) and mute (connected at 0 s) are over
	// the timeout and dropped by the next sweep at 37.5 s.
	clock.Advance(17500 * time.Millisecond)
	quiet.expectClosed()
	mute.expectClosed()
	logs.waitLog(t, "heartbeat timeout 30s): dropping")
	if n := srv.Hub.timeouts.Load(); n != 2 {
		t.Fatalf("%d connections timed out, want 2", n)
	}
	quiet.c.Close()
	mute.c.Close()
	waitFor(t, "quiet to leave", func() bool { return srv.Hub.Online() == 2 })

	// Any frame counts: an unknown command keeps talker alive, heartbeats
	// keep beater alive, well past the first timeout.
	for range 4 {
		beater.heartbeat()
		talker.sync()
		beater.sync()
		clock.Advance(15 * time.Second)
	}
	beater.sync()
	talker.sync()
	if n := srv.Hub.timeouts.Load(); n != 2 {
		t.Fatalf("%d connections timed out, want still 2", n)
	}
	// Then beater alone stops talking.
	clock.Advance(20 * time.Second)
	talker.sync()
	clock.Advance(20 * time.Second)
	beater.expectClosed()
	talker.sync()
}

func TestSweepInterval(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{60 * time.Second: 15 * time.Second, 2 * time.Millisecond: time.Millisecond} {
		if got := (Config{HeartbeatTimeout: timeout}).SweepInterval(); got != want {
			t.Errorf("timeout %v: sweep every %v, want %v", timeout, got, want)
		}
	}
}
