package reactor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// count is a Counter and a Gauge; observe an Observer. Prometheus's own
// types are tested in the runner, against the real binary.
type count struct{ n atomic.Int64 }

func (c *count) Inc()          { c.n.Add(1) }
func (c *count) Dec()          { c.n.Add(-1) }
func (c *count) Add(v float64) { c.n.Add(int64(v)) }

type observe struct {
	mu sync.Mutex
	vs []float64
}

func (o *observe) Observe(v float64) { o.mu.Lock(); o.vs = append(o.vs, v); o.mu.Unlock() }
func (o *observe) n() int            { o.mu.Lock(); defer o.mu.Unlock(); return len(o.vs) }

type testMetrics struct {
	accepted, open, waiting, received, sent count
	rejected                                map[string]*count
	duration                                observe
}

func newTestMetrics() (*testMetrics, *PortMetrics) {
	tm := &testMetrics{rejected: map[string]*count{}}
	for _, r := range RejectReasons {
		tm.rejected[r] = &count{}
	}
	return tm, &PortMetrics{
		Accepted: &tm.accepted, Open: &tm.open, Waiting: &tm.waiting,
		Rejected: func(r string) Counter { return tm.rejected[r] },
		Received: &tm.received, Sent: &tm.sent, Duration: &tm.duration,
	}
}

// A port counts every client it accepts, those it serves, parks, and
// turns away (by reason), the bytes either way and each connection's
// duration; the gauges come back to 0 when the clients leave.
func TestPortMetrics(t *testing.T) {
	tm, pm := newTestMetrics()
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1; p.MaxWaiting = 1; p.Metrics = pm })
	c1 := tp.dial(t)
	roundTrip(t, c1, "hello")
	c2 := tp.dial(t)
	eventually(t, "c2 parked", func() bool { return tm.waiting.n.Load() == 1 })
	c3 := tp.dial(t)
	eventually(t, "c3 turned away", func() bool { return tm.rejected[RejectQueueFull].n.Load() == 1 })
	c3.Close()
	c2.Close()
	eventually(t, "c2 counted as hung up", func() bool { return tm.rejected[RejectHungUp].n.Load() == 1 })
	if got := tm.open.n.Load(); got != 1 {
		t.Errorf("open with c1 served: %d, want 1", got)
	}
	c1.Close()
	eventually(t, "c1 closed", func() bool { return tm.open.n.Load() == 0 && tm.duration.n() == 1 })
	for what, c := range map[string]*count{"accepted": &tm.accepted, "received": &tm.received, "sent": &tm.sent} {
		want := map[string]int64{"accepted": 3, "received": 5, "sent": 5}[what]
		if got := c.n.Load(); got != want {
			t.Errorf("%s: %d, want %d", what, got, want)
		}
	}
	if got := tm.waiting.n.Load(); got != 0 {
		t.Errorf("waiting after every client left: %d", got)
	}
}

// Clients still parked when the grace period ends are counted as turned
// away at shutdown.
func TestPortMetricsShutdown(t *testing.T) {
	tm, pm := newTestMetrics()
	tp := startPort(t, context.Background(), func(p *Port) { p.MaxConnections = 1; p.Metrics = pm })
	c1 := tp.dial(t)
	roundTrip(t, c1, "one")
	tp.dial(t)
	eventually(t, "c2 parked", func() bool { return tm.waiting.n.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tp.Stop(ctx)
	if got := tm.rejected[RejectShutdown].n.Load(); got != 1 {
		t.Errorf("rejected at shutdown: %d, want 1", got)
	}
	if w, o := tm.waiting.n.Load(), tm.open.n.Load(); w != 0 || o != 0 {
		t.Errorf("after Stop: waiting %d, open %d", w, o)
	}
}
