package chat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/testutil"
)

// TestGracefulShutdownUnderLoad runs the real binary, keeps 100 clients
// chatting, sends SIGTERM, and checks that every client sees its
// connection closed (EOF, not a reset) and that the server exits 0. The
// send queue is large enough for the whole bounded load, so no client is
// dropped as a slow reader however slow the machine.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	p := testutil.Start(t, "", "-n", "--logfile", "-", "chat", "--port", "0", "--iface", "127.0.0.1", "--send-queue", "33554432")
	addr := p.ListenAddr(t)
	const n = 100
	conns := make([]net.Conn, n)
	for i := range conns {
		c := dial(t, addr)
		c.login(fmt.Sprintf(`"u%d"`, i))
		conns[i] = c.c
	}
	// Logged in before any load starts, so each verify reply comes first.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	received := make(chan int, n)
	for i, c := range conns {
		// Readers: drain until the server closes; the stream must end
		// with a clean EOF on a frame boundary.
		wg.Go(func() {
			var d wire.Decoder
			buf := make([]byte, 32<<10)
			frames := 0
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				k, err := c.Read(buf)
				if ferr := d.Feed(buf[:k], func(wire.Frame) bool { frames++; return true }); ferr != nil {
					errs <- fmt.Errorf("client %d: %v", i, ferr)
					return
				}
				if errors.Is(err, io.EOF) {
					c.Close()
					if d.Buffered() != 0 {
						errs <- fmt.Errorf("client %d: closed mid-frame", i)
					}
					received <- frames
					return
				}
				if err != nil {
					errs <- fmt.Errorf("client %d after %d frames: %v", i, frames, err)
					return
				}
			}
		})
		// Every fourth client sends broadcasts and group messages until
		// its writes fail (bounded: 6,000 frames, at most ~6 MB queued for
		// any one recipient).
		if i%4 == 0 {
			wg.Go(func() {
				from := fmt.Sprintf(`"u%d"`, i)
				var batch []byte
				batch = wire.AppendFrame(batch, 1, wire.CmdBroadcast, []byte(`{"chat_from":`+from+`,"chat_content":"load"}`))
				batch = wire.AppendFrame(batch, 1, wire.CmdGroup, []byte(`{"chat_from":`+from+`,"chat_to":["u1","u2","u3"],"chat_content":"g"}`))
				batch = wire.AppendFrame(batch, 1, wire.CmdHeartbeat, nil)
				for range 2000 {
					c.SetWriteDeadline(time.Now().Add(20 * time.Second))
					if _, err := c.Write(batch); err != nil {
						return
					}
				}
			})
		}
	}
	// Stop while the load runs: wait until every client has some traffic.
	p.WaitFor(t, "logged in", 5*time.Second)
	probe := dial(t, addr)
	probe.login(`"probe"`)
	for range 50 {
		if f := probe.next(); f.Command != wire.CmdBroadcastMsg {
			t.Fatalf("probe got %d %s", f.Command, f.Body)
		}
	}
	go func() {
		// The probe drains like the others, unchecked.
		probe.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.Copy(io.Discard, probe.c)
		probe.c.Close()
	}()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, p.Stdout, p.Stderr)
	}
	wg.Wait()
	close(errs)
	close(received)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", p.Stdout)
	}
	total, clients := 0, 0
	for k := range received {
		total += k
		clients++
	}
	if clients != n {
		t.Fatalf("%d of %d clients saw a clean close", clients, n)
	}
	out := p.Stdout.String() + p.Stderr.String()
	if strings.Contains(out, "panic") {
		t.Fatalf("panic in the log:\n%s", out)
	}
	t.Logf("%d clients closed cleanly after receiving %d frames in all", clients, total)
}
