package echo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/echo"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
	"github.com/twistd-go/twistd/internal/testutil"
)

// BenchmarkEcho measures the echo plugin (as `twistd echo` configures it)
// beside two bare stdlib goroutine-per-connection servers in the same run:
// io.Copy(c, c) ("bare", which splices socket to socket in the kernel) and
// a 64 KiB read/write loop ("loop", what a server that looks at its bytes
// does at best): MB/s for streams of 4 KiB and 64 KiB messages on 1 and 16
// connections, and round trips per second for 64-byte messages on 1 and 64
// connections. `make bench` prints medians and ratios (tools/benchtable.awk).
func BenchmarkEcho(b *testing.B) {
	servers := []struct {
		name string
		addr string
	}{
		{"twistd", startTwistdEcho(b)},
		{"bare", startBareEcho(b)},
		{"loop", startLoopEcho(b)},
	}
	for _, row := range []struct {
		stream bool
		conns  int
		size   int
	}{
		{true, 1, 4 << 10}, {true, 16, 4 << 10}, {true, 1, 64 << 10}, {true, 16, 64 << 10},
		{false, 1, 64}, {false, 64, 64},
	} {
		kind := "rtt"
		if row.stream {
			kind = "stream"
		}
		for _, s := range servers {
			b.Run(fmt.Sprintf("%s-%dconn-%dB/%s", kind, row.conns, row.size, s.name), func(b *testing.B) {
				if row.stream {
					stream(b, s.addr, row.conns, row.size)
				} else {
					roundTrips(b, s.addr, row.conns, row.size)
				}
			})
		}
	}
}

func startTwistdEcho(b *testing.B) string {
	tree := echo.New("echo", echo.Config{
		Endpoint:     reactor.Endpoint{Kind: "tcp", Interface: "127.0.0.1"},
		WriteTimeout: time.Minute, // the plugin's default
	}, slog.New(slog.DiscardHandler))
	if err := tree.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tree.Stop(context.Background()) })
	port, _ := tree.(*service.Collection).Lookup("tcp")
	return port.(*reactor.Port).Addr().String()
}

func startBareEcho(b *testing.B) string {
	return testutil.ServeBare(b, func(c net.Conn) { io.Copy(c, c) })
}

func startLoopEcho(b *testing.B) string {
	return testutil.ServeBare(b, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// dialAll opens n connections that close at cleanup; every I/O on them is
// bounded by a deadline so a stuck server fails the benchmark.
func dialAll(b *testing.B, addr string, n int) []net.Conn {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		conns[i] = c
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// share splits b.N operations over n workers.
func share(total, n, i int) int {
	k := total / n
	if i < total%n {
		k++
	}
	return k
}

// stream sends b.N messages of size bytes spread over the connections,
// each with a writer and a reader running at once, and counts the bytes
// echoed back.
func stream(b *testing.B, addr string, nconns, size int) {
	conns := dialAll(b, addr, nconns)
	b.SetBytes(int64(size))
	errs := make(chan error, 2*nconns)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, c := range conns {
		k := share(b.N, nconns, i)
		wg.Go(func() {
			msg := make([]byte, size)
			for range k {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			buf := make([]byte, size)
			for range k {
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		b.Fatal(err)
	}
}

// roundTrips sends one message and waits for its echo before the next, on
// every connection at once.
func roundTrips(b *testing.B, addr string, nconns, size int) {
	conns := dialAll(b, addr, nconns)
	errs := make(chan error, nconns)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, c := range conns {
		k := share(b.N, nconns, i)
		wg.Go(func() {
			msg, buf := make([]byte, size), make([]byte, size)
			for range k {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		b.Fatal(err)
	}
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}
