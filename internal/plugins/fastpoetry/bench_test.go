package fastpoetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
	"github.com/twistd-go/twistd/internal/testutil"
)

// BenchmarkConnections measures poems served per second (one connection
// each: connect, read to EOF, close) with 1 and 64 concurrent clients, for
// the fastpoetry service and for a bare goroutine-per-connection stdlib
// server sending the same poem. Both servers run side by side and take
// turns in rounds of `round` connections (b.N in all, half each; who goes
// first alternates), so drift in the machine's load hits both alike. It
// reports each server's conns/s over its rounds and their ratio
// (twistd/bare); `make bench` tabulates the medians of several runs.
func BenchmarkConnections(b *testing.B) {
	const round = 2000
	poem := []byte(strings.Repeat("Whose woods these are I think I know.\n", 16)) // 608 bytes
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			bare := testutil.ServeBare(b, func(c net.Conn) { c.Write(poem) })
			twistd, stopTwistd := startTwistd(b, poem, nil)
			defer stopTwistd()
			var spent [2]time.Duration
			var served [2]int
			each := (b.N + 1) / 2 // connections per server
			addrs := []string{bare, twistd}
			b.ResetTimer()
			for turn := 0; served[0] < each || served[1] < each; turn++ {
				for k := range 2 {
					i := (turn + k) % 2
					n := min(round, each-served[i])
					spent[i] += runClients(b, addrs[i], clients, n, len(poem))
					served[i] += n
				}
			}
			b.StopTimer()
			bareRate := float64(served[0]) / spent[0].Seconds()
			twistdRate := float64(served[1]) / spent[1].Seconds()
			b.ReportMetric(bareRate, "bare-conns/s")
			b.ReportMetric(twistdRate, "twistd-conns/s")
			b.ReportMetric(twistdRate/bareRate, "ratio")
		})
	}
}

// runClients makes n connections to addr from `clients` goroutines and
// returns the time they took; every connection must receive want bytes.
func runClients(b *testing.B, addr string, clients, n, want int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range clients {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Store(err)
					return
				}
				got := 0
				for {
					m, err := c.Read(buf)
					got += m
					if err != nil {
						break
					}
				}
				c.Close()
				if got != want {
					failed.Store(fmt.Errorf("%s: got %d bytes, want %d", addr, got, want))
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return took
}

// BenchmarkMetricsCost measures what --metrics costs: poems served per
// second by two fastpoetry services side by side, one counting into a
// Prometheus registry and one not (64 clients). They take turns in rounds
// of 500 connections, who goes first alternating, and each pair of
// neighbouring rounds gives a ratio (with/without); the median of those
// is reported, so a burst of load from elsewhere on the machine that
// lands on one round of a pair moves one ratio, not the result. Issue 16
// wants it at 0.97 or above; `make bench-metrics` gives the median of 10
// runs.
func BenchmarkMetricsCost(b *testing.B) {
	const round, clients = 500, 64
	poem := []byte(strings.Repeat("Whose woods these are I think I know.\n", 16))
	reg := prometheus.NewRegistry()
	plain, stopPlain := startTwistd(b, poem, nil)
	defer stopPlain()
	counted, stopCounted := startTwistd(b, poem, plugins.NewMetricSet(reg).For("fastpoetry"))
	defer stopCounted()
	var spent [2]time.Duration
	var served [2]int
	var ratios []float64
	each := (b.N + 1) / 2
	addrs := []string{plain, counted}
	b.ResetTimer()
	for turn := 0; served[0] < each || served[1] < each; turn++ {
		var rate [2]float64
		for k := range 2 {
			i := (turn + k) % 2
			n := min(round, each-served[i])
			took := runClients(b, addrs[i], clients, n, len(poem))
			spent[i] += took
			served[i] += n
			rate[i] = float64(n) / took.Seconds()
		}
		if rate[0] > 0 && rate[1] > 0 {
			ratios = append(ratios, rate[1]/rate[0])
		}
	}
	b.StopTimer()
	// The counted server must really have counted.
	if got := testutil.Samples(b, reg)[`twistd_connections_accepted_total{service="fastpoetry"}`]; got != float64(served[1]) {
		b.Fatalf("accepted counter %v, want %d", got, served[1])
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(served[0])/spent[0].Seconds(), "without-conns/s")
	b.ReportMetric(float64(served[1])/spent[1].Seconds(), "with-conns/s")
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}

// startTwistd runs the plugin's real service tree, with its per-connection
// log line formatted and written (to a discarding writer); m, if set,
// counts its connections.
func startTwistd(b *testing.B, poem []byte, m *plugins.Metrics) (string, func()) {
	path := filepath.Join(b.TempDir(), "poem.txt")
	if err := os.WriteFile(path, poem, 0o644); err != nil {
		b.Fatal(err)
	}
	log := slog.New(logging.NewTextHandler(io.Discard, nil))
	svc := New(plugins.Env{Name: "fastpoetry", Log: log, Metrics: m}, reactor.Endpoint{Kind: "tcp", Port: 0, Interface: "127.0.0.1"}, path)
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
