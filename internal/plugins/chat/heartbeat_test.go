package chat

import (
	"strings"
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
	if got := (Config{HeartbeatTimeout: time.Minute, FrameTimeout: 10 * time.Second}).SweepInterval(); got != 2500*time.Millisecond {
		t.Errorf("frame timeout 10s: sweep every %v, want 2.5s", got)
	}
}

// TestStalledFrameDropped: a frame must arrive whole within the frame
// timeout of its first byte, however often the client is heard from; a
// client whose reads end mid-frame but whose frames complete is not
// dropped.
func TestStalledFrameDropped(t *testing.T) {
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.FrameTimeout = 4 * time.Second // sweeps every second
	srv, addr, logs := startServerClock(t, cfg, clock)
	cs := loggedIn(t, addr, `"streamer"`, `"watcher"`)
	streamer, watcher := cs[0], cs[1]
	staller := dial(t, addr) // not logged in, so it receives nothing
	frame := wire.AppendFrame(nil, 1, wire.CmdBroadcast, []byte(`{"chat_from":"streamer","chat_content":"`+strings.Repeat("x", 1000)+`"}`))
	half := len(frame) / 2
	stall := wire.AppendFrame(nil, 1, wire.CmdHeartbeat, make([]byte, 1000))
	staller.write(stall[:500])
	streamer.write(frame[:half])
	waitFor(t, "the server to hold both half frames", func() bool {
		srv.Hub.mu.RLock()
		defer srv.Hub.mu.RUnlock()
		held := 0
		for p := range srv.Hub.conns {
			if n := p.buffered.Load(); n == 500 || n == int32(half) {
				held++
			}
		}
		return held == 2
	})
	// 3 s per read: each read completes the streamer's frame and starts
	// the next, so no frame of its is ever 4 s old.
	for range 3 {
		clock.Advance(3 * time.Second)
		streamer.write(append(frame[half:], frame[:half]...))
		if f := watcher.next(); f.Command != wire.CmdBroadcastMsg {
			t.Fatalf("watcher got %d", f.Command)
		}
	}
	// 9 s after its frame began (dropped by the sweep at 5 s), the staller
	// is gone; the streamer is not.
	staller.expectClosed()
	logs.waitLog(t, "frame incomplete after")
	logs.waitLog(t, "(500 bytes of it received; --frame-timeout 4s): dropping")
	streamer.write(frame[half:])
	streamer.sync()
	if n := srv.Hub.stalls.Load(); n != 1 {
		t.Fatalf("%d connections dropped for a stalled frame, want 1", n)
	}
}
