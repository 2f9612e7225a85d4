package plugins

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twistd-go/twistd/internal/reactor"
)

// MetricSet hands each service its Metrics, all on one registry (the
// runner's). A nil *MetricSet (no --metrics) hands out nil Metrics.
type MetricSet struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	by  map[string]*Metrics
}

// NewMetricSet returns the set counting into reg.
func NewMetricSet(reg prometheus.Registerer) *MetricSet {
	return &MetricSet{reg: reg, by: map[string]*Metrics{}}
}

// For returns the Metrics of the service named service: the same value
// each time for one name, so services that share a name (which the
// service tree then refuses) never register a series twice.
func (s *MetricSet) For(service string) *Metrics {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.by[service]
	if !ok {
		m = &Metrics{reg: prometheus.WrapRegistererWith(prometheus.Labels{"service": service}, s.reg)}
		s.by[service] = m
	}
	return m
}

// Metrics is what one service counts through. Every series registered
// through it carries the label service="NAME" (the service's name in the
// tree). A nil *Metrics (the runner without --metrics) counts nothing:
// Port returns nil and Registerer nil, and a plugin then keeps no metrics.
type Metrics struct {
	reg  prometheus.Registerer
	once sync.Once
	port *reactor.PortMetrics
}

// Registerer returns the registerer for the plugin's own series (nil for
// a nil Metrics). Names follow the README's table: twistd_PLUGIN_..., base
// units, no label that holds a peer or a user.
func (m *Metrics) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// durationBuckets span a poem served in a millisecond to a chat session
// held for hours.
var durationBuckets = []float64{.001, .005, .025, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 4 * 3600}

// Port returns the connection metrics of the service's listening ports:
// every port of one service counts into the same series. nil for a nil
// Metrics.
func (m *Metrics) Port() *reactor.PortMetrics {
	if m == nil {
		return nil
	}
	m.once.Do(func() {
		accepted := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twistd_connections_accepted_total", Help: "Clients accepted, served or not.",
		})
		open := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twistd_connections_open", Help: "Connections being served.",
		})
		waiting := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twistd_connections_waiting", Help: "Clients waiting, unread, for a slot under --max-connections.",
		})
		rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twistd_connections_rejected_total",
			Help: "Clients accepted but closed unserved, by reason: queue_full (--max-waiting), hung_up (left while waiting), shutdown (still waiting when the grace period ended).",
		}, []string{"reason"})
		received := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twistd_bytes_received_total", Help: "Bytes read from clients.",
		})
		sent := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twistd_bytes_sent_total", Help: "Bytes written to clients.",
		})
		duration := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "twistd_connection_duration_seconds", Help: "How long served connections lasted.",
			Buckets: durationBuckets,
		})
		m.reg.MustRegister(accepted, open, waiting, rejected, received, sent, duration)
		// Children made now: every reason shows from 0, and counting
		// never looks a label up.
		byReason := map[string]reactor.Counter{}
		for _, r := range reactor.RejectReasons {
			byReason[r] = rejected.WithLabelValues(r)
		}
		m.port = &reactor.PortMetrics{
			Accepted: accepted, Open: open, Waiting: waiting,
			Rejected: func(reason string) reactor.Counter { return byReason[reason] },
			Received: received, Sent: sent, Duration: duration,
		}
	})
	return m.port
}
