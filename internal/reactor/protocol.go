// Package reactor is twistd's networking core (Twisted's reactor, endpoints
// and internet services) built on Go's netpoller: one goroutine at a time
// reads each connection and delivers its events to a Protocol, so a
// protocol's callbacks never run concurrently.
//
// # Writes and back-pressure
//
// Transport.Write never waits for the peer (Twisted's transports and
// their producers and consumers). When nothing is queued it writes to the
// socket at once, as much as the kernel takes without blocking; what is
// left is copied to the connection's bounded output queue, which the
// connection's one writer goroutine (started at the first such write,
// parked while the queue is empty) drains, handing everything queued to
// one writev. Writes from any goroutine keep their order and are never
// interleaved.
//
// A fan-out (a chat broadcast) uses Transport.Relay from the sender's
// callback: the peers' writers are not woken, and when the callback
// returns its goroutine writes what it relayed to each peer with one
// non-blocking writev, leaving only what a socket did not take to that
// peer's writer. While more of the sender's input already waits in its
// socket the writes wait for it too (for up to 8 reads, and while the
// peer's queue is under half the high-water mark), and any wait of the
// read loop writes them first. Like Twisted, which writes a
// callback's output once the reactor is back in its loop, a burst of ten
// messages for a thousand peers then costs a thousand system calls and no
// goroutine switch.
//
// Past Port.HighWater queued bytes (DefaultHighWater) the connection
// stops reading its peer, and reads again once the queue is down to half
// of it; so a protocol that writes from DataReceived (echo, a relay) is
// paced by its slowest reader, the peer's further bytes wait in kernel
// buffers, and a client that sends without reading costs the server a
// bounded amount of memory (tests bound the live-heap growth at 256 KiB).
// A protocol implementing FlowWatcher is told when that happens. Past
// Port.MaxQueued (DefaultMaxQueued) the connection is closed, with a log
// line naming the peer and the bytes dropped, and ConnectionLost gets
// ErrOutputQueueFull. Port's WriteTimeout closes a connection whose queue
// made no progress for that long; PauseProducing/ResumeProducing stop and
// restart reading explicitly.
//
// In Twisted's terms (IProducer, IConsumer): the transport is the
// consumer and the peer's input the producer it pauses; registerProducer
// and a streaming producer's pauseProducing/resumeProducing are
// Port.HighWater and the read loop's pause, a protocol hears them as
// FlowWatcher.PeerSlow/PeerCaughtUp, pauseProducing called by the
// protocol is Transport.PauseProducing, and Port.MaxQueued is the bound
// Twisted leaves to the application.
//
// Port's IdleTimeout closes a connection with no bytes either way for that
// long (between T and T+T/8: one sweep on the port's clock checks every
// connection's last-activity stamp, so a port holding many quiet clients
// keeps one timer, not one each).
//
// # Reading, long work and TLS
//
// A connection's read buffer starts at Port.ReadBufferSize, doubles while
// reads fill it, up to Port.MaxReadBufferSize (DefaultMaxReadBufferSize),
// and halves back after a run of small reads; buffers come from pools.
// Transport.Go runs long work (a transfer, a password hash) in a goroutine
// the connection owns: its context ends when the connection closes, a
// panic in it is logged with its stack and closes that connection only,
// and ConnectionLost runs once every such goroutine returned.
// Transport.StartTLS switches a live connection to TLS (AUTH TLS,
// STARTTLS) after the clear output queued before it.
//
// On Linux a plain TCP or unix connection of a Port that heard nothing
// for a sweep interval (100-200 ms), or whose inputs come that far apart
// (a heartbeat), goes dormant as soon as its socket is empty: its read
// buffer goes back to the pool, its goroutine ends, and the socket waits
// in the port's own epoll set (EPOLLONESHOT, beside the netpoller) until
// it is readable, when a fresh goroutine reads on; a busier connection
// waits in the netpoller, which costs less per message. A stop request,
// LoseConnection, AbortConnection, an idle timeout or a FlowWatcher's
// congestion rouses it the same way. A paused or congested connection, a
// TLS connection (after StartTLS too: crypto/tls reads through the
// blocking net.Conn), a ClientService's connection and every connection
// elsewhere keep a goroutine blocked in Read, as do all of a Port's with
// ReaderPerConnection.
//
// A dormant connection costs the server its socket (Go's net.Conn: about
// 300 bytes of heap and 600 of runtime poller state), 240 bytes of
// reactor state and its protocol's own: the port's settings are shared,
// and the writer's queue, the jobs, the idle timer and the pause condition
// are made when first needed. A writer parked for a whole sweep interval
// ends and its queue goes, so a connection sent a broadcast long ago holds
// neither; the next queued write starts another.
//
// # Connection limits
//
// With Port.MaxConnections, or the runner's --max-connections, N clients
// are served at once. Further clients are accepted but parked unread, in
// FIFO order; when a served connection ends the oldest is handed to its
// protocol with every byte it sent still in the kernel buffer. A parked
// client that hangs up leaves the queue: a goroutine per parked client
// waits on the netpoller for readability and peeks (recv with MSG_PEEK,
// which consumes nothing); a peek of 0 bytes (closed with nothing sent), an
// error, or bytes on a socket whose TCP state says it was reset removes it.
// A client that sent data and half-closed stays queued, so its request is
// answered. Port.MaxWaiting bounds the queue: a client past it is closed
// at once. Without it the descriptor limit bounds the queue (what is left
// after the served connections and a reserve of 64 for accepting, logging
// and files), and at that bound the port stops accepting: further clients
// wait in the kernel's listen queue, which holds no descriptor of ours.
// "connection limit of N reached", "wait queue full" and "wait queue
// drained" are logged once per spell. After accepting failed (descriptor
// exhaustion), one line says when it works again.
// Stop keeps the queue: parked clients are still handed slots as
// connections finish (each is asked to stop, like the rest, right after
// ConnectionMade), and only those parked when the grace period ends are
// closed unserved.
//
// # Closing
//
// LoseConnection refuses further writes and first lets the writer flush
// what is queued (given up when it makes no progress for the write
// timeout, or 5 s without one); a peer's FIN likewise waits for queued
// output before the socket closes. Then it closes at once when the peer
// has acknowledged every byte and sent nothing unread (SIOCOUTQ and SIOCINQ both 0). Otherwise it
// half-closes and reads, discarding, until the peer's FIN, until the
// kernel has had everything acknowledged, or until delivery stalls for 5 s:
// closing a socket with data in flight or unread input would reset the
// connection and cost a slow reader the end of its reply.
//
// The runner's --max-connections reaches a port the way every runner-wide
// setting reaches a plugin: through the plugin's environment (plugins.Env),
// from which the plugin sets Port.MaxConnections. A context carries only
// cancellation and deadlines here.
//
// # Metrics
//
// A Port with Metrics set counts accepted clients, open and waiting
// connections, rejected clients by reason, bytes either way and each
// connection's duration. The reactor does not import a metrics library:
// PortMetrics holds small interfaces (Counter, Gauge, Observer) that
// client_golang's types satisfy, so the runner owns the registry and the
// names, and the reactor only counts. Without metrics (a nil PortMetrics)
// counting costs one nil check per event. Bytes are counted as they move,
// not when a connection ends, so a long-lived connection's traffic shows
// while it lasts; each count is one atomic add on a shared counter.
// DatagramPort counts nothing: a datagram is no connection.
//
// # Timers and clients
//
// CallLater and LoopingCall run on a Clock: RealClock in production, a
// FakeClock in tests. Their callbacks run on timer goroutines, not on a
// connection's goroutine. ClientService keeps one outgoing connection open
// and reconnects by a RetryPolicy (DefaultRetryPolicy is Twisted's
// backoffPolicy).
package reactor

import (
	"context"
	"crypto/tls"
	"net"
)

// Protocol receives the events of one connection. All three methods are
// called from the connection's own goroutine, never concurrently. They
// should return quickly: long work (a file transfer, a slow lookup) belongs
// in a goroutine started with Transport.Go.
type Protocol interface {
	ConnectionMade(t Transport)
	// DataReceived gets bytes as they arrive; p is only valid during the
	// call (the buffer is reused).
	DataReceived(p []byte)
	// ConnectionLost is called once, after the socket is closed. reason is
	// nil for a clean close by either side.
	ConnectionLost(reason error)
}

// Transport is a protocol's handle on its connection.
type Transport interface {
	// Write sends p, or queues what the socket does not take at once, and
	// returns without waiting for the peer; p may be reused when it
	// returns. It is safe from any goroutine; writes keep their order and
	// are not interleaved. It fails with net.ErrClosed after
	// LoseConnection or a close, and with ErrOutputQueueFull when the
	// queue passed its hard limit (the connection is then closed). A write
	// that fails closes the connection.
	Write(p []byte) (int, error)
	// WriteShared is Write for bytes that are never modified again (a
	// frame encoded once for many peers): the queue keeps p itself, not
	// a copy.
	WriteShared(p []byte) (int, error)
	// Relay is to.WriteShared(p) for a fan-out from this connection's
	// callback (a chat broadcast): to's writer is not woken until the
	// callback returns, when this goroutine writes all the callback relayed
	// to each peer in one system call, as far as the socket takes it.
	Relay(to Transport, p []byte) (int, error)
	// LoseConnection closes the connection after everything written so far
	// has been sent, and waits briefly for the peer to close its side so it
	// is not sent a reset. Writes after it are refused. Safe from any
	// goroutine.
	LoseConnection()
	// AbortConnection closes at once, discarding unsent data (TCP reset).
	AbortConnection()
	// Go runs f in a goroutine the connection owns, for long work (a file
	// transfer, a slow lookup, a password hash): ctx is cancelled when the
	// connection closes, a panic in f closes only this connection, and
	// ConnectionLost waits until every such goroutine returned. It returns
	// false, running nothing, once the connection is closing.
	Go(f func(ctx context.Context)) bool
	// StartTLS switches the connection to TLS, as the server, after the
	// output queued so far went out in clear; early holds bytes already
	// received past the switch point. Call it from a callback.
	StartTLS(cfg *tls.Config, early []byte) error
	// PauseProducing stops reading from the peer until ResumeProducing.
	PauseProducing()
	ResumeProducing()
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// Factory builds one Protocol per accepted connection.
type Factory interface {
	BuildProtocol(remote net.Addr) Protocol
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(remote net.Addr) Protocol

// BuildProtocol calls f.
func (f FactoryFunc) BuildProtocol(remote net.Addr) Protocol { return f(remote) }

// StopRequester is implemented by protocols that can end early when the
// server shuts down (an idle echo session, a chat client). StopRequested is
// called on the connection's goroutine, like the other callbacks, when the
// listener starts its graceful stop; the protocol typically finishes what it
// promised and calls LoseConnection. Bytes the kernel had already received
// from the peer when the stop was asked for reach DataReceived first (unless
// reading is paused), so a request that arrived in time is answered.
// Protocols without it keep running until they close or the grace period
// ends.
type StopRequester interface {
	StopRequested()
}

// FlowWatcher is implemented by protocols that want to know when their
// peer falls behind (Twisted's IPushProducer, paused by its consumer):
// PeerSlow when queued output passed the high-water mark and reading
// paused, PeerCaughtUp when the queue is down to half of it and reading
// resumed. Both run on the connection's goroutine, like the other
// callbacks; a relay might stop feeding the slow peer meanwhile.
type FlowWatcher interface {
	PeerSlow()
	PeerCaughtUp()
}

// systemKey is the log attribute naming which service or connection a line
// is about (logging.SystemKey; the runner's handler shows it in brackets).
const systemKey = "system"
