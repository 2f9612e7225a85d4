package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/testutil"
)

// TestStopDoesNotCutBroadcasts stops the server while senders broadcast
// to many clients: a broadcast the hub accepted before the stop reaches
// every client connected then, so each sender's messages reach every
// receiver up to the same number, in order, before the clean close.
func TestStopDoesNotCutBroadcasts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueBytes = 32 << 20 // the whole bounded load fits: nobody is a slow reader
	srv, addr, _ := startServer(t, cfg)
	stopCut(t, addr, 100, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSIGTERMDoesNotCutBroadcasts is the same with the real binary, its
// SIGTERM and its --grace, and more receivers.
func TestSIGTERMDoesNotCutBroadcasts(t *testing.T) {
	p := testutil.Start(t, "", "-n", "--logfile", "-", "--grace", "10s", "chat", "--port", "0", "--iface", "127.0.0.1", "--send-queue", "33554432")
	stopCut(t, p.ListenAddr(t), 500, func() {
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d\n%s%s", code, p.Stdout, p.Stderr)
		}
	})
}

// stopCut connects receivers and 4 senders, calls stop while the senders
// broadcast, and checks every receiver got each sender's broadcasts up to
// the same number.
func stopCut(t *testing.T, addr string, receivers int, stop func()) {
	const senders, perSender, batch = 4, 3000, 50
	conns := make([]*client, receivers)
	for i := range conns {
		conns[i] = dial(t, addr)
		conns[i].login(fmt.Sprintf(`"u%d"`, i))
	}
	// got[r][s] is how many of sender s's broadcasts receiver r saw.
	got := make([][senders]int, receivers)
	errs := make(chan error, receivers)
	var seen atomic.Int64
	var wg sync.WaitGroup
	for r, c := range conns {
		wg.Go(func() {
			var d wire.Decoder
			buf := make([]byte, 32<<10)
			c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			// One error each: a receiver that went on reading after one
			// would fill errs and hang the test instead of failing it.
			failed := false
			for !failed {
				k, err := c.c.Read(buf)
				if ferr := d.Feed(buf[:k], func(f wire.Frame) bool {
					// Content "S:N": the N-th broadcast of sender S.
					s, n, ok := parseSeq(f.Body)
					if f.Command != wire.CmdBroadcastMsg || !ok || s >= senders {
						errs <- fmt.Errorf("receiver %d: unexpected frame %d %s", r, f.Command, f.Body)
						failed = true
						return false
					}
					if n != got[r][s] {
						errs <- fmt.Errorf("receiver %d: broadcast %d of sender %d after %d of its broadcasts", r, n, s, got[r][s])
						failed = true
						return false
					}
					got[r][s]++
					seen.Add(1)
					return true
				}); ferr != nil {
					errs <- fmt.Errorf("receiver %d: %v", r, ferr)
					return
				}
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					errs <- fmt.Errorf("receiver %d: %v", r, err)
					return
				}
			}
		})
	}
	// The senders are connections of their own, not logged in as
	// receivers, so every broadcast goes to the same set.
	for s := range senders {
		sc := dial(t, addr)
		sc.login(fmt.Sprintf(`"s%d"`, s))
		go io.Copy(io.Discard, sc.c) // other senders' broadcasts
		wg.Go(func() {
			for n := 0; n < perSender; n += batch {
				var b []byte
				for k := n; k < n+batch; k++ {
					b = wire.AppendFrame(b, 1, wire.CmdBroadcast, []byte(fmt.Sprintf(`{"chat_from":"s%d","chat_content":"%d:%d"}`, s, s, k)))
				}
				sc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := sc.c.Write(b); err != nil {
					return // the server closed: stopped
				}
			}
		})
	}
	// Stop a tenth of the way through, so the senders are still sending.
	waitFor(t, "broadcasts to flow", func() bool { return seen.Load() >= int64(receivers*senders*perSender/10) })
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for s := range senders {
		most := 0
		for r := range got {
			most = max(most, got[r][s])
		}
		short := 0
		for r := range got {
			if got[r][s] != most {
				short++
			}
		}
		if short > 0 {
			t.Errorf("sender %d: %d of %d receivers got fewer than the %d broadcasts others got", s, short, receivers, most)
		}
		t.Logf("sender %d: %d broadcasts accepted", s, most)
	}
}

func parseSeq(body []byte) (sender, n int, ok bool) {
	i := strings.LastIndex(string(body), `"chat_content":"`)
	if i < 0 {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(strings.TrimSuffix(string(body[i+len(`"chat_content":"`):]), `"}`), ":")
	s, err1 := strconv.Atoi(a)
	k, err2 := strconv.Atoi(b)
	return s, k, ok && err1 == nil && err2 == nil
}
