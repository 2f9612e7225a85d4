package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

// TestProtocolErrorsLogBounded: a client repeating a protocol error is
// answered every time, but of its warnings only the first few per interval
// reach the log, then one line counts the rest; another client's first
// warning is not held back by it.
func TestProtocolErrorsLogBounded(t *testing.T) {
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.MaxErrors = 0 // the log limit alone
	_, addr, logs := startServerClock(t, cfg, clock)
	spoofer := loggedIn(t, addr, `"mallory"`)[0]
	const n = 2000
	var stream []byte
	for range n {
		stream = wire.AppendFrame(stream, 1, wire.CmdBroadcast, []byte(`{"chat_from":"alice","chat_content":"x"}`))
	}
	go spoofer.c.Write(stream) // the replies are read below, so it cannot block for long
	for range n {
		spoofer.expectError(1, wire.CodeNotYou)
	}
	spoofer.sync()
	if got := strings.Count(logs.String(), "protocol error 403"); got != logging.DefaultPeerBurst {
		t.Fatalf("%d lines about %d errors; want %d:\n%s", got, n, logging.DefaultPeerBurst, logs)
	}
	// The next interval begins with the count of the last.
	clock.Advance(logging.DefaultPeerInterval)
	spoofer.send(1, wire.CmdBroadcast, `{"chat_from":"alice","chat_content":"x"}`)
	spoofer.expectError(1, wire.CodeNotYou)
	// n spoofed frames and the sync's unknown command, less the burst.
	logs.waitLog(t, "suppressed 1996 similar lines from 127.0.0.1")
	if got := strings.Count(logs.String(), "protocol error 403"); got != logging.DefaultPeerBurst+1 {
		t.Fatalf("%d lines after the interval; want %d", got, logging.DefaultPeerBurst+1)
	}
}

// TestTooManyErrorsClose: a connection past --max-errors protocol errors in
// one second is told (429) and closed, with one line in the log although
// its warnings had used up their burst.
func TestTooManyErrorsClose(t *testing.T) {
	clock := reactor.NewFakeClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.MaxErrors = 20
	_, addr, logs := startServerClock(t, cfg, clock)
	ok := loggedIn(t, addr, `"ok"`)[0]
	bad := dial(t, addr)
	var stream []byte
	for range 100 {
		stream = wire.AppendFrame(stream, 3, 999, nil)
	}
	bad.write(stream)
	for range 21 {
		bad.expectError(3, wire.CodeUnknownCmd)
	}
	bad.expectError(3, wire.CodeTooManyErrors)
	bad.expectClosed()
	logs.waitLog(t, "more than 20 protocol errors in one second (--max-errors): closing")
	// Errors spread over seconds are not a flood: 20 a second for 3 s.
	slow := dial(t, addr)
	for range 3 {
		for range 20 {
			slow.send(1, 999, "")
		}
		for range 20 {
			slow.expectError(1, wire.CodeUnknownCmd)
		}
		clock.Advance(time.Second)
	}
	slow.heartbeat()
	slow.send(1, wire.CmdVerify, `{"phone_number":"slow"}`)
	slow.expect(1, wire.CmdVerifyResult)
	ok.sync()
}
