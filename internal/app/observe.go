package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/reactor"
)

// health is what /healthz, /readyz and the systemd watchdog report: the
// lifecycle loop answers pings while it runs (a loop stuck on something
// stops answering), and ready holds from "every service started" until a
// shutdown begins.
type health struct {
	ping  chan chan struct{}
	ready atomic.Bool
}

func newHealth() *health { return &health{ping: make(chan chan struct{})} }

// answer is the lifecycle loop's side of a ping.
func (h *health) answer(reply chan struct{}) { close(reply) }

// alive asks the lifecycle loop to answer within timeout.
func (h *health) alive(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	reply := make(chan struct{})
	select {
	case h.ping <- reply:
	case <-t.C:
		return false
	}
	select {
	case <-reply:
		return true
	case <-t.C:
		return false
	}
}

// healthTimeout is how long /healthz waits for the lifecycle loop.
const healthTimeout = time.Second

// runnerMetrics are the runner's own series (DESIGN.md: names are a
// documented contract; see the README's table).
type runnerMetrics struct {
	reg         *prometheus.Registry
	services    *plugins.MetricSet // the services' series, on reg
	logReopens  prometheus.Counter
	logFailures prometheus.CounterFunc
}

// forService returns what the service named name counts through; nil
// without --metrics.
func (m *runnerMetrics) forService(name string) *plugins.Metrics {
	if m == nil {
		return nil
	}
	return m.services.For(name)
}

// newRunnerMetrics makes the registry the runner owns: the Go and process
// collectors (which only the global default registry has on its own),
// build info and the start time.
func newRunnerMetrics() *runnerMetrics {
	reg := prometheus.NewRegistry()
	m := &runnerMetrics{
		reg:      reg,
		services: plugins.NewMetricSet(reg),
		logReopens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twistd_log_reopens_total", Help: "Times the log file was reopened (SIGUSR1, a daemon's SIGHUP).",
		}),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "twistd_build_info", Help: "Always 1; the labels say which twistd runs.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version(), runtime.Version()).Set(1)
	start := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "twistd_start_time_seconds", Help: "When the process started, in seconds since the Unix epoch.",
	})
	start.Set(float64(time.Now().UnixNano()) / 1e9)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		info, start, m.logReopens,
	)
	return m
}

// countLogFailures exposes the sink's count of lines it could not write.
func (m *runnerMetrics) countLogFailures(n func() uint64) {
	m.logFailures = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "twistd_log_write_errors_total", Help: "Log lines that could not be written (full disk, ...).",
	}, func() float64 { return float64(n()) })
	m.reg.MustRegister(m.logFailures)
}

// observer serves /metrics, /healthz and /readyz on --metrics. It is a
// service of the runner's tree: bound in the privileged phase like every
// listener, started first and stopped last, so it answers (readyz 503)
// through a drain.
type observer struct {
	ep     reactor.Endpoint
	health *health
	reg    *prometheus.Registry
	log    *slog.Logger

	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	once sync.Once
}

func newObserver(ep reactor.Endpoint, h *health, reg *prometheus.Registry, log *slog.Logger) *observer {
	return &observer{ep: ep, health: h, reg: reg, log: log}
}

func (o *observer) Name() string     { return "metrics" }
func (o *observer) Describe() string { return o.ep.String() }

func (o *observer) PrivilegedStart(ctx context.Context) error {
	ln, err := o.ep.Listen(ctx)
	if err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	o.ln = ln
	return nil
}

func (o *observer) handler() http.Handler {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{
		// The scraper chooses: OpenMetrics when its Accept asks for it.
		EnableOpenMetrics: true,
		Registry:          o.reg,
	})
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(o.reg, metrics))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !o.health.alive(healthTimeout) {
			http.Error(w, "lifecycle loop does not answer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !o.health.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func (o *observer) Start(context.Context) error {
	if o.ln == nil {
		return errors.New("--metrics: not bound")
	}
	o.srv = &http.Server{
		Handler:           o.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
	}
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("metrics endpoint: "+err.Error(), "system", "metrics")
		}
	}()
	o.log.Info("metrics, health and readiness on http://"+o.ln.Addr().String(), "system", "metrics")
	return nil
}

// Stop ends the endpoint last of all, under the grace deadline.
func (o *observer) Stop(ctx context.Context) error {
	var err error
	o.once.Do(func() {
		if o.srv == nil {
			if o.ln != nil {
				err = o.ln.Close()
			}
			return
		}
		if e := o.srv.Shutdown(ctx); e != nil {
			o.srv.Close()
		}
		<-o.done
	})
	return err
}

// Sockets hands the endpoint's socket to a replacement on a reload.
func (o *observer) Sockets() []reactor.Socket {
	if sc, ok := o.ln.(syscall.Conn); ok {
		return []reactor.Socket{{Key: o.ep.Key(), Conn: sc}}
	}
	return nil
}

// HandOver stops serving here: the replacement answers from now on.
func (o *observer) HandOver() {
	if o.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(ctx); err != nil {
		o.srv.Close()
	}
}

// Busy is 0: a scrape in progress is finished by HandOver.
func (o *observer) Busy() int { return 0 }
