// Package reactor is twistd's networking core for plugin authors
// (Twisted's reactor, endpoints and internet services).
//
// # Serving
//
// A listening service is a Port: NewPort(name, endpoint, factory, log).
// It binds in the privileged step (before the privilege drop), accepts in
// Start and, in Stop, stops accepting, serves the clients already waiting,
// lets connections in flight finish until the grace deadline and aborts
// the rest. Endpoints are strings users write (ParseEndpoint, or PortFlag
// for a plugin's --port and --iface):
//
//	10000                          TCP port 10000 on every interface
//	tcp:10000:interface=127.0.0.1
//	unix:/run/app.sock
//	systemd:domain=INET:index=0    a socket systemd passed in
//
// For each connection the Factory makes a Protocol; its callbacks
// (ConnectionMade, DataReceived, ConnectionLost) run on the connection's
// goroutine, never concurrently, and must return quickly. The Protocol
// writes through its Transport, which is safe from any goroutine. A
// Protocol that also implements StopRequester is told when a shutdown
// begins, so an idle session can end early.
//
// The runner's --max-connections caps the connections a Port serves at
// once; clients beyond it wait unread, in order (Port.MaxConnections sets
// a cap of the plugin's own). A DatagramPort serves UDP the same way.
//
// # Time
//
// Timers and retries take a Clock (RealClock, or a FakeClock in tests):
// CallLater, LoopingCall. A ClientService keeps an outgoing connection up
// with a RetryPolicy (BackoffPolicy), as Twisted's ClientService does.
//
// The types are aliases of the implementation in twistd's
// internal/reactor; their methods are documented there.
package reactor

import (
	"log/slog"
	"time"

	"github.com/twistd-go/twistd/internal/reactor"
)

// Endpoint is a parsed server endpoint string.
type Endpoint = reactor.Endpoint

// ParseEndpoint parses a server endpoint string.
func ParseEndpoint(s string) (Endpoint, error) { return reactor.ParseEndpoint(s) }

// PortFlag turns a plugin's --port value (a bare port, or a full endpoint)
// and --iface into an endpoint.
func PortFlag(port, iface string) (Endpoint, error) { return reactor.PortFlag(port, iface) }

// Port is a listening service: bound in PrivilegedStart, accepting in
// Start, draining in Stop.
type Port = reactor.Port

// NewPort returns a Port serving ep with f; a nil logger means
// slog.Default.
func NewPort(name string, ep Endpoint, f Factory, log *slog.Logger) *Port {
	return reactor.NewPort(name, ep, f, log)
}

// PortMetrics are a Port's connection series (Port.Metrics; from
// plugin.Env.Metrics.Port()); nil counts nothing.
type PortMetrics = reactor.PortMetrics

// Counter, Gauge and Observer are what PortMetrics count with; the
// Prometheus client's types satisfy them.
type (
	Counter  = reactor.Counter
	Gauge    = reactor.Gauge
	Observer = reactor.Observer
)

// Protocol receives the events of one connection.
type Protocol = reactor.Protocol

// Factory makes a Protocol for each new connection.
type Factory = reactor.Factory

// FactoryFunc adapts a function to a Factory.
type FactoryFunc = reactor.FactoryFunc

// Transport is a Protocol's handle on its connection: Write,
// LoseConnection (after what was written is sent), AbortConnection (reset),
// PauseProducing and ResumeProducing (stop and resume reading), addresses.
type Transport = reactor.Transport

// StopRequester is implemented by protocols that can end early when a
// shutdown begins.
type StopRequester = reactor.StopRequester

// FlowWatcher is implemented by protocols that want to know when their
// peer stops reading (PeerSlow: output queued past Port.HighWater, reading
// paused) and when it caught up (PeerCaughtUp).
type FlowWatcher = reactor.FlowWatcher

// ErrOutputQueueFull is the reason a connection closed because its peer
// let more than Port.MaxQueued bytes queue up unread.
var ErrOutputQueueFull = reactor.ErrOutputQueueFull

// Defaults of a Port's buffer and queue sizes.
const (
	DefaultReadBufferSize    = reactor.DefaultReadBufferSize
	DefaultMaxReadBufferSize = reactor.DefaultMaxReadBufferSize
	DefaultHighWater         = reactor.DefaultHighWater
	DefaultMaxQueued         = reactor.DefaultMaxQueued
)

// DatagramPort is a UDP socket as a service.
type DatagramPort = reactor.DatagramPort

// NewDatagramPort returns a UDP service on ep's address.
func NewDatagramPort(name string, ep Endpoint, h DatagramHandler, log *slog.Logger) *DatagramPort {
	return reactor.NewDatagramPort(name, ep, h, log)
}

// DatagramHandler receives datagrams of a DatagramPort.
type DatagramHandler = reactor.DatagramHandler

// DatagramFunc adapts a function to a DatagramHandler.
type DatagramFunc = reactor.DatagramFunc

// Clock is the source of time for timers, retries and timeouts.
type Clock = reactor.Clock

// Timer is a pending call made by a Clock.
type Timer = reactor.Timer

// RealClock returns the system clock.
func RealClock() Clock { return reactor.RealClock }

// FakeClock is a Clock that moves only when told (Twisted's task.Clock).
type FakeClock = reactor.FakeClock

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return reactor.NewFakeClock(start) }

// DelayedCall is a call scheduled by CallLater.
type DelayedCall = reactor.DelayedCall

// CallLater calls f once after d on clock c (Twisted's callLater).
func CallLater(c Clock, d time.Duration, f func()) *DelayedCall { return reactor.CallLater(c, d, f) }

// LoopingCall calls a function at an interval (Twisted's LoopingCall).
type LoopingCall = reactor.LoopingCall

// NewLoopingCall returns a LoopingCall of f on clock c.
func NewLoopingCall(c Clock, f func()) *LoopingCall { return reactor.NewLoopingCall(c, f) }

// ClientService keeps a connection to a server up, reconnecting by its
// RetryPolicy (Twisted's ClientService).
type ClientService = reactor.ClientService

// NewClientService returns a ClientService connecting to address over
// network with f.
func NewClientService(name, network, address string, f Factory, log *slog.Logger) *ClientService {
	return reactor.NewClientService(name, network, address, f, log)
}

// RetryPolicy gives the delay before the next attempt after a number of
// failed ones.
type RetryPolicy = reactor.RetryPolicy

// BackoffPolicy returns an exponential RetryPolicy: initial, growing by
// factor up to maxDelay, plus jitter (nil for none).
func BackoffPolicy(initial time.Duration, factor float64, maxDelay time.Duration, jitter func() time.Duration) RetryPolicy {
	return reactor.BackoffPolicy(initial, factor, maxDelay, jitter)
}

// RandomJitter returns a jitter of up to upTo for BackoffPolicy.
func RandomJitter(upTo time.Duration) func() time.Duration { return reactor.RandomJitter(upTo) }

// ErrServiceStopped is returned by a ClientService's waits once it stopped.
var ErrServiceStopped = reactor.ErrServiceStopped
