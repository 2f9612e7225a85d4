package chat

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
)

// dialTinyBuffer connects with a 4 KiB receive buffer set before the
// handshake, so a client that does not read fills up quickly.
func dialTinyBuffer(t *testing.T, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: wait, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, buf: make([]byte, 64<<10)}
}

func TestSlowReaderDisconnectedOthersServed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxFrame = 16 << 10
	cfg.QueueBytes = 256 << 10
	srv, addr, logs := startServer(t, cfg)
	slow := dialTinyBuffer(t, addr)
	slow.login(`"slow"`)
	cs := loggedIn(t, addr, `"fast"`, `"sender"`)
	fast, sender := cs[0], cs[1]

	// The fast reader counts every broadcast it gets, on its own goroutine.
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	progress := make(chan int, 10000)
	go func() {
		n := 0
		for {
			fast.c.SetReadDeadline(time.Now().Add(wait))
			f, err := fast.read()
			if err != nil {
				got <- result{n, err}
				return
			}
			switch {
			case f.Command == wire.CmdBroadcastMsg:
				n++
				progress <- n
			case f.Command == wire.CmdError && bytes.Contains(f.Body, []byte("unknown command")):
				got <- result{n, nil} // the sync marker
				return
			default:
				got <- result{n, fmt.Errorf("unexpected frame %d %s", f.Command, f.Body)}
				return
			}
		}
	}()

	body := []byte(`{"chat_from":"sender","chat_content":"` + strings.Repeat("z", 8000) + `"}`)
	frame := wire.AppendFrame(nil, 1, wire.CmdBroadcast, body)
	sent, seen := 0, 0
	// paced keeps the fast reader within 4 messages (32 KB, an eighth of its
	// queue limit) of the sender, so a reader that keeps up is not dropped
	// even when its writer goroutine is scheduled late on a busy machine.
	paced := func() {
		t.Helper()
		for seen < sent-4 {
			select {
			case seen = <-progress:
			case r := <-got:
				t.Fatalf("fast reader stopped after %d: %v (sent %d seen %d)", r.n, r.err, sent, seen)
			case <-time.After(wait):
				t.Fatalf("fast reader stuck at %d of %d", seen, sent)
			}
		}
	}
	// Bounded: 5,000 messages of 8 KB (40 MB), far more than the kernel
	// buffers of one socket hold.
	for ; sent < 5000 && srv.Hub.overflows.Load() == 0; sent++ {
		paced()
		sender.write(frame)
	}
	if srv.Hub.overflows.Load() == 0 {
		t.Fatalf("no overflow after %d messages", sent)
	}
	logs.waitLog(t, "outgoing queue full")
	// A few more after the drop; the fast reader must get every message.
	for range 20 {
		paced()
		sender.write(frame)
		sent++
	}
	sender.sync()
	fast.send(1, 999, "")
	r := <-got
	if r.err != nil || r.n != sent {
		t.Fatalf("fast reader got %d of %d broadcasts (err %v)", r.n, sent, r.err)
	}
	// The slow reader was cut off: after what the kernel buffered, its
	// stream ends.
	slow.c.SetReadDeadline(time.Now().Add(wait))
	for {
		if _, err := slow.c.Read(slow.buf); err != nil {
			break
		}
	}
	waitFor(t, "the slow reader to leave the table", func() bool { return srv.Hub.Online() == 2 })
	t.Logf("slow reader dropped after %d broadcasts of %d bytes", sent-20, len(frame))
}
