package chat

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
)

func TestSingleGroupBroadcast(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"alice"`, `"bob"`, `13800138000`)
	alice, bob, carol := cs[0], cs[1], cs[2]

	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"hi bob"}`)
	m := bob.expect(1, wire.CmdSingleMsg)
	if m["chat_from"] != "alice" || m["chat_content"] != "hi bob" || len(m) != 2 {
		t.Fatalf("bob got %v", m)
	}
	// A number ID and its string form are the same user; the sender is
	// named as it logged in.
	bob.send(1, wire.CmdGroup, `{"chat_from":"bob","chat_to":["alice","13800138000"],"chat_content":"hi all"}`)
	if m := alice.expect(1, wire.CmdGroupMsg); m["chat_from"] != "bob" || m["chat_content"] != "hi all" {
		t.Fatalf("alice got %v", m)
	}
	carol.expect(1, wire.CmdGroupMsg)
	carol.send(1, wire.CmdBroadcast, `{"chat_from":"13800138000","chat_content":"to everyone"}`)
	for _, c := range []*client{alice, bob} {
		if m := c.expect(1, wire.CmdBroadcastMsg); m["chat_from"] != float64(13800138000) || m["chat_content"] != "to everyone" {
			t.Fatalf("broadcast got %v", m)
		}
	}
	for _, c := range cs {
		c.sync() // nothing else arrived (no broadcast echo to carol)
	}
}

func TestRelayedBytesAreExact(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"a"`, `"b"`)
	cs[0].send(1, wire.CmdSingle, `{"chat_content" : "caf\u00e9 \"q\"", "chat_to":"b","chat_from":"a"}`)
	f := cs[1].next()
	want := wire.AppendFrame(nil, 1, wire.CmdSingleMsg, []byte(`{"chat_from":"a","chat_content":"caf\u00e9 \"q\""}`))
	if got := wire.AppendFrame(nil, f.Version, f.Command, f.Body); !bytes.Equal(got, want) {
		t.Fatalf("relayed frame\n%q\nwant\n%q", got, want)
	}
}

func TestVersionsEchoed(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	a, b := dial(t, addr), dial(t, addr)
	a.send(3, wire.CmdVerify, `{"phone_number":"a"}`)
	a.expect(3, wire.CmdVerifyResult)
	b.send(1, wire.CmdVerify, `{"phone_number":"b"}`)
	b.expect(1, wire.CmdVerifyResult)
	// A reply carries the version of the frame it answers; a relayed
	// message the version its recipient logged in with.
	a.send(7, wire.CmdSingle, `{"chat_from":"a","chat_to":"b","chat_content":"x"}`)
	b.expect(1, wire.CmdSingleMsg)
	a.send(7, 55, ``)
	a.expectError(7, wire.CodeUnknownCmd)
}

func TestSplitAndMergedFrames(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	bob := loggedIn(t, addr, `"bob"`)[0]
	alice := dial(t, addr)
	var stream []byte
	stream = wire.AppendFrame(stream, 1, wire.CmdVerify, []byte(`{"phone_number":"alice"}`))
	for i := range 3 {
		stream = wire.AppendFrame(stream, 1, wire.CmdSingle, []byte(fmt.Sprintf(`{"chat_from":"alice","chat_to":"bob","chat_content":"byte %d"}`, i)))
	}
	for i := range stream {
		alice.write(stream[i : i+1])
	}
	alice.expect(1, wire.CmdVerifyResult)
	for i := range 3 {
		if m := bob.expect(1, wire.CmdSingleMsg); m["chat_content"] != fmt.Sprintf("byte %d", i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	// Many frames in one write, the last one cut in two.
	stream = stream[:0]
	const n = 500
	for i := range n {
		stream = wire.AppendFrame(stream, 1, wire.CmdSingle, []byte(fmt.Sprintf(`{"chat_from":"alice","chat_to":"bob","chat_content":"merged %d"}`, i)))
		stream = wire.AppendFrame(stream, 1, wire.CmdHeartbeat, nil)
	}
	alice.write(stream[:len(stream)-5])
	alice.write(stream[len(stream)-5:])
	for i := range n {
		if m := bob.expect(1, wire.CmdSingleMsg); m["chat_content"] != fmt.Sprintf("merged %d", i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	alice.sync()
	bob.sync()
}

func TestBadLengthsClose(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxFrame = 1024
	_, addr, logs := startServer(t, cfg)
	cs := loggedIn(t, addr, `"ok1"`, `"ok2"`)
	for _, tc := range []struct {
		header []byte
		code   int
	}{
		{[]byte{0, 0, 0, 11, 0, 0, 0, 1, 0, 0, 0, 5}, wire.CodeShortFrame},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5}, wire.CodeShortFrame},
		{[]byte{0, 0, 4, 1, 0, 0, 0, 1, 0, 0, 0, 2}, wire.CodeLargeFrame},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 2}, wire.CodeLargeFrame},
	} {
		bad := loggedIn(t, addr, `"bad"`)[0]
		// A valid frame in the same write before the bad header is still
		// handled; the frame after it is not.
		stream := wire.AppendFrame(nil, 1, wire.CmdSingle, []byte(`{"chat_from":"bad","chat_to":"ok1","chat_content":"before"}`))
		stream = append(stream, tc.header...)
		stream = wire.AppendFrame(stream, 1, wire.CmdSingle, []byte(`{"chat_from":"bad","chat_to":"ok1","chat_content":"after"}`))
		bad.write(stream)
		bad.expectError(1, tc.code)
		bad.expectClosed()
		if m := cs[0].expect(1, wire.CmdSingleMsg); m["chat_content"] != "before" {
			t.Fatalf("ok1 got %v", m)
		}
	}
	// The error reply carries the bad header's version, also as the
	// connection's first frame.
	for _, header := range [][]byte{{0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 5}, {0, 0, 4, 1, 0, 0, 0, 7, 0, 0, 0, 2}} {
		bad := dial(t, addr)
		bad.write(header)
		bad.expect(7, wire.CmdError)
		bad.expectClosed()
	}
	logs.waitLog(t, "is above the maximum 1024; closing")
	// Nothing else on the server was affected.
	cs[0].send(1, wire.CmdSingle, `{"chat_from":"ok1","chat_to":"ok2","chat_content":"still here"}`)
	cs[1].expect(1, wire.CmdSingleMsg)
	cs[0].sync()
	cs[1].sync()
}

func TestFrameOfMaxSizeAccepted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxFrame = 200
	_, addr, _ := startServer(t, cfg)
	cs := loggedIn(t, addr, `"a"`, `"b"`)
	prefix := `{"chat_from":"a","chat_to":"b","chat_content":"`
	body := prefix + string(bytes.Repeat([]byte("x"), 200-wire.HeaderLen-len(prefix)-2)) + `"}`
	cs[0].send(1, wire.CmdSingle, body)
	cs[1].expect(1, wire.CmdSingleMsg)
}

func TestBadBodies(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"a"`, `"b"`)
	a := cs[0]
	for _, tc := range []struct {
		cmd  uint32
		body string
	}{
		{wire.CmdVerify, `not json`},
		{wire.CmdVerify, `{"phone_number":null}`},
		{wire.CmdVerify, `{"phone_number":[1]}`},
		{wire.CmdVerify, `[]`},
		{wire.CmdSingle, ``},
		{wire.CmdSingle, `{"chat_from":"a","chat_to":"b"}`},
		{wire.CmdSingle, `{"chat_from":"a","chat_to":"b","chat_content":5}`},
		{wire.CmdSingle, `{"chat_from":"a","chat_to":["b"],"chat_content":"x"}`},
		{wire.CmdSingle, `{"chat_to":"b","chat_content":"x"}`},
		{wire.CmdSingle, "{\"chat_from\":\"a\",\"chat_to\":\"b\",\"chat_content\":\"\xff\"}"},
		{wire.CmdGroup, `{"chat_from":"a","chat_to":[],"chat_content":"x"}`},
		{wire.CmdGroup, `{"chat_from":"a","chat_to":"b","chat_content":"x"}`},
		{wire.CmdGroup, `{"chat_from":"a","chat_to":["b",{}],"chat_content":"x"}`},
		{wire.CmdBroadcast, `{"chat_from":"a"}`},
	} {
		a.send(1, tc.cmd, tc.body)
		a.expectError(1, wire.CodeBadBody)
	}
	// The connection and the user are still fine, and nothing was relayed.
	a.send(1, wire.CmdSingle, `{"chat_from":"a","chat_to":"b","chat_content":"fine"}`)
	if m := cs[1].expect(1, wire.CmdSingleMsg); m["chat_content"] != "fine" {
		t.Fatalf("b got %v", m)
	}
	a.sync()
}

func TestUnknownCommandKeepsSync(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"a"`, `"b"`)
	var stream []byte
	stream = wire.AppendFrame(stream, 1, 0, nil)
	stream = wire.AppendFrame(stream, 1, 101, []byte(`{"code":1}`))
	stream = wire.AppendFrame(stream, 1, 77, []byte(`{"chat_from":"a","chat_to":"b","chat_content":"x"}`))
	stream = wire.AppendFrame(stream, 1, wire.CmdSingle, []byte(`{"chat_from":"a","chat_to":"b","chat_content":"after"}`))
	cs[0].write(stream)
	for range 3 {
		cs[0].expectError(1, wire.CodeUnknownCmd)
	}
	if m := cs[1].expect(1, wire.CmdSingleMsg); m["chat_content"] != "after" {
		t.Fatalf("b got %v", m)
	}
}

func TestOnlyVerifyAndHeartbeatBeforeLogin(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	b := loggedIn(t, addr, `"b"`)[0]
	anon := dial(t, addr)
	anon.heartbeat()
	for _, cmd := range []uint32{wire.CmdSingle, wire.CmdGroup, wire.CmdBroadcast} {
		anon.send(1, cmd, `{"chat_from":"x","chat_to":["b"],"chat_content":"x"}`)
		anon.expectError(1, wire.CodeNotVerified)
	}
	// A failed verify does not log in either.
	anon.send(1, wire.CmdVerify, `{"phone_number":""}`)
	anon.expectError(1, wire.CodeBadBody)
	anon.send(1, wire.CmdBroadcast, `{"chat_from":"x","chat_content":"x"}`)
	anon.expectError(1, wire.CodeNotVerified)
	b.sync()
}

func TestSpoofedFromRefused(t *testing.T) {
	_, addr, logs := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"mallory"`, `"alice"`, `"bob"`)
	m, bob := cs[0], cs[2]
	for _, cmd := range []uint32{wire.CmdSingle, wire.CmdGroup, wire.CmdBroadcast} {
		to := `"bob"`
		if cmd == wire.CmdGroup {
			to = `["bob"]`
		}
		m.send(1, cmd, `{"chat_from":"alice","chat_to":`+to+`,"chat_content":"from alice, honest"}`)
		m.expectError(1, wire.CodeNotYou)
	}
	logs.waitLog(t, "protocol error 403: chat_from must be your own ID")
	bob.sync() // bob received none of them
	cs[1].sync()
}

func TestDuplicateLogin(t *testing.T) {
	srv, addr, logs := startServer(t, DefaultConfig())
	old := loggedIn(t, addr, `"7"`)[0]
	other := loggedIn(t, addr, `"8"`)[0]
	newer := dial(t, addr)
	newer.send(2, wire.CmdVerify, `{"phone_number":7}`)
	newer.expect(2, wire.CmdVerifyResult)
	old.expectError(1, wire.CodeReplaced)
	old.expectClosed()
	old.c.Close()
	logs.waitLog(t, "ID logged in on another connection")
	waitFor(t, "the old connection to go", func() bool { return srv.Port.Connections() == 2 })
	// The old connection left the table without taking the new one with it.
	if n := srv.Hub.Online(); n != 2 {
		t.Fatalf("%d users online, want 2", n)
	}
	other.send(1, wire.CmdSingle, `{"chat_from":"8","chat_to":"7","chat_content":"to the new one"}`)
	if m := newer.expect(2, wire.CmdSingleMsg); m["chat_content"] != "to the new one" {
		t.Fatalf("new connection got %v", m)
	}
	other.sync()
	// Logging in again on the same connection keeps the ID.
	newer.login(`"7"`)
	if n := srv.Hub.Online(); n != 2 {
		t.Fatalf("%d users online after re-verify, want 2", n)
	}
}

func TestOfflineRecipients(t *testing.T) {
	srv, addr, _ := startServer(t, DefaultConfig())
	cs := loggedIn(t, addr, `"a"`, `"b"`)
	a, b := cs[0], cs[1]
	a.send(1, wire.CmdSingle, `{"chat_from":"a","chat_to":"nobody","chat_content":"x"}`)
	m := a.expectError(1, wire.CodeUndelivered)
	if fmt.Sprint(m["undelivered"]) != "[nobody]" {
		t.Fatalf("undelivered %v", m["undelivered"])
	}
	a.send(1, wire.CmdGroup, `{"chat_from":"a","chat_to":["x",42,"b","x"],"chat_content":"group"}`)
	m = a.expectError(1, wire.CodeUndelivered)
	if fmt.Sprint(m["undelivered"]) != "[x 42]" {
		t.Fatalf("undelivered %v", m["undelivered"])
	}
	if m := b.expect(1, wire.CmdGroupMsg); m["chat_content"] != "group" {
		t.Fatalf("b got %v", m)
	}
	// Once b has gone, b is offline too.
	b.c.Close()
	waitFor(t, "b to go offline", func() bool { return srv.Hub.Online() == 1 })
	a.send(1, wire.CmdSingle, `{"chat_from":"a","chat_to":"b","chat_content":"x"}`)
	if m := a.expectError(1, wire.CodeUndelivered); fmt.Sprint(m["undelivered"]) != "[b]" {
		t.Fatalf("undelivered %v", m["undelivered"])
	}
}

// TestVerifyResultComesFirst logs clients in while broadcasts flow: the
// verify result must precede any relayed message.
func TestVerifyResultComesFirst(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	sender := loggedIn(t, addr, `"sender"`)[0]
	done := make(chan struct{})
	defer close(done)
	go func() {
		frame := wire.AppendFrame(nil, 1, wire.CmdBroadcast, []byte(`{"chat_from":"sender","chat_content":"x"}`))
		for range 20000 {
			select {
			case <-done:
				return
			default:
			}
			if _, err := sender.c.Write(frame); err != nil {
				return
			}
		}
	}()
	for i := range 50 {
		loggedIn(t, addr, fmt.Sprintf(`"late%d"`, i))[0].c.Close()
	}
}
