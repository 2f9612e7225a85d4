package fastpoetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/app/service"
	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/reactor"
)

// BenchmarkConnections measures poems served per second (one connection
// each: connect, read to EOF, close) with 1 and 64 concurrent clients, for
// the fastpoetry service and for a bare goroutine-per-connection stdlib
// server sending the same poem, in the same run. Compare the conns/s
// metric of twistd with bare: `make bench` prints both.
func BenchmarkConnections(b *testing.B) {
	poem := []byte(strings.Repeat("Whose woods these are I think I know.\n", 16)) // 608 bytes
	servers := []struct {
		name  string
		start func(b *testing.B, poem []byte) (addr string, stop func())
	}{
		{"bare", startBare},
		{"twistd", startTwistd},
	}
	for _, clients := range []int{1, 64} {
		for _, srv := range servers {
			b.Run(fmt.Sprintf("clients=%d/server=%s", clients, srv.name), func(b *testing.B) {
				addr, stop := srv.start(b, poem)
				defer stop()
				runClients(b, addr, clients, len(poem))
			})
		}
	}
}

func runClients(b *testing.B, addr string, clients, want int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for next.Add(1) <= int64(b.N) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Store(err)
					return
				}
				n := 0
				for {
					m, err := c.Read(buf)
					n += m
					if err != nil {
						break
					}
				}
				c.Close()
				if n != want {
					failed.Store(fmt.Errorf("got %d bytes, want %d", n, want))
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
}

// startBare is the baseline: accept, write the poem, close.
func startBare(b *testing.B, poem []byte) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c.Write(poem)
				c.Close()
			})
		}
	})
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

// startTwistd runs the plugin's real service tree, with its per-connection
// log line formatted and written (to a discarding writer).
func startTwistd(b *testing.B, poem []byte) (string, func()) {
	path := filepath.Join(b.TempDir(), "poem.txt")
	if err := os.WriteFile(path, poem, 0o644); err != nil {
		b.Fatal(err)
	}
	log := slog.New(logging.NewTextHandler(io.Discard, nil))
	svc := New("fastpoetry", reactor.Endpoint{Kind: "tcp", Port: 0, Interface: "127.0.0.1"}, path, log)
	ctx := context.Background()
	if err := svc.(service.PrivilegedStarter).PrivilegedStart(ctx); err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	var addr string
	for _, s := range svc.(service.Container).Services() {
		if p, ok := s.(*reactor.Port); ok {
			addr = p.Addr().String()
		}
	}
	return addr, func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		svc.Stop(ctx)
	}
}
