package reactor

// Counter, Gauge and Observer are the parts of a Prometheus metric the
// reactor counts through: prometheus.Counter, prometheus.Gauge and
// prometheus.Histogram satisfy them, and so does anything else with these
// methods. The reactor defines them instead of importing client_golang so
// that it stays free of any metrics library (see the package doc).
type (
	Counter interface {
		Inc()
		Add(float64)
	}
	Gauge interface {
		Inc()
		Dec()
	}
	Observer interface {
		Observe(float64)
	}
)

// Reasons a Port closes a client it accepted but never served, as
// PortMetrics.Rejected counts them.
const (
	// RejectQueueFull: the wait queue was full (Port.MaxWaiting).
	RejectQueueFull = "queue_full"
	// RejectHungUp: the client hung up while it waited for a slot.
	RejectHungUp = "hung_up"
	// RejectShutdown: the grace period ended while it waited.
	RejectShutdown = "shutdown"
)

// RejectReasons lists every reason, so a metric can expose each from 0.
var RejectReasons = []string{RejectQueueFull, RejectHungUp, RejectShutdown}

// PortMetrics are the series a listening port counts into. A nil
// *PortMetrics counts nothing and costs one comparison per event; every
// field of a non-nil one must be set.
type PortMetrics struct {
	Accepted Counter // clients accepted, served or not
	Open     Gauge   // connections being served
	Waiting  Gauge   // clients parked under the connection limit
	// Rejected returns the counter of one reason (RejectQueueFull, ...).
	Rejected func(reason string) Counter
	Received Counter  // bytes read from clients
	Sent     Counter  // bytes written to clients
	Duration Observer // seconds from ConnectionMade to the close
}
