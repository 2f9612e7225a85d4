package logging

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults of a PeerLimiter: a peer may log this many warnings per
// interval; the rest are counted and reported in one line.
const (
	DefaultPeerBurst    = 5
	DefaultPeerInterval = 10 * time.Second
)

// maxPeers bounds the peers a PeerLimiter tracks at once, so many
// addresses cannot grow its memory; warnings from peers beyond it share
// one count.
const maxPeers = 4096

// otherPeers is the key under which peers beyond maxPeers are counted.
const otherPeers = "other peers"

// PeerLimiter bounds what one peer (a remote address) can write to the log,
// so a client that commits the same fault in a loop cannot rotate the log's
// history away: of each peer's warnings, the first Burst of every Interval
// are logged and the rest only counted. When the interval is over, one line
// "suppressed N similar lines from PEER" reports the count; it is written
// by the next Warn or Flush after the interval ends, whichever comes first,
// so a plugin with a periodic task calls Flush from it. A PeerLimiter is
// safe for use from any goroutine; its zero value is not usable, make one
// with NewPeerLimiter.
type PeerLimiter struct {
	log      *slog.Logger
	burst    int
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	peers     map[string]*peerWindow
	nextFlush time.Time
}

// peerWindow is one peer's interval: when it began, how many lines it
// logged and how many it had suppressed.
type peerWindow struct {
	start      time.Time
	logged     int
	suppressed int
}

// NewPeerLimiter returns a limiter writing its summary lines to log. burst
// and interval of 0 mean DefaultPeerBurst and DefaultPeerInterval; now
// tells the time (nil means time.Now).
func NewPeerLimiter(log *slog.Logger, burst int, interval time.Duration, now func() time.Time) *PeerLimiter {
	if burst <= 0 {
		burst = DefaultPeerBurst
	}
	if interval <= 0 {
		interval = DefaultPeerInterval
	}
	if now == nil {
		now = time.Now
	}
	return &PeerLimiter{log: log, burst: burst, interval: interval, now: now, peers: map[string]*peerWindow{}}
}

// PeerKey names the peer of addr for a PeerLimiter: the IP address of an
// IP peer, so reconnecting from another port does not start afresh, and
// the address as a string otherwise (all clients of an unnamed Unix socket
// are one peer).
func PeerKey(addr net.Addr) string {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UDPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	return addr.String()
}

// Warn logs msg and args on log at warning level unless peer has used up
// its lines for the current interval, and reports whether it did.
func (l *PeerLimiter) Warn(log *slog.Logger, peer string, msg string, args ...any) bool {
	now := l.now()
	l.mu.Lock()
	ended := l.flushLocked(now, false)
	w := l.peers[peer]
	if w != nil && now.Sub(w.start) >= l.interval {
		ended = w.report(peer, ended)
		delete(l.peers, peer)
		w = nil
	}
	if w == nil {
		if len(l.peers) >= maxPeers {
			peer = otherPeers
			w = l.peers[peer]
		}
		if w == nil {
			w = &peerWindow{start: now}
			l.peers[peer] = w
		}
	}
	allowed := w.logged < l.burst && peer != otherPeers
	if allowed {
		w.logged++
	} else {
		w.suppressed++
	}
	l.mu.Unlock()
	l.write(ended)
	if allowed {
		log.Warn(msg, args...)
	}
	return allowed
}

// Flush writes the summary line of every peer whose interval is over; with
// all set, also of those whose interval is still running (at shutdown).
func (l *PeerLimiter) Flush(all bool) {
	now := l.now()
	l.mu.Lock()
	ended := l.flushLocked(now, all)
	l.mu.Unlock()
	l.write(ended)
}

// flushLocked forgets ended intervals and returns the summary lines owed.
// It scans the table at most once per interval unless all is set, so Warn
// stays cheap with many peers: a peer that went quiet is reported up to
// one interval late.
func (l *PeerLimiter) flushLocked(now time.Time, all bool) []string {
	if !all && now.Before(l.nextFlush) {
		return nil
	}
	l.nextFlush = now.Add(l.interval)
	var lines []string
	for peer, w := range l.peers {
		if all || now.Sub(w.start) >= l.interval {
			lines = w.report(peer, lines)
			delete(l.peers, peer)
		}
	}
	return lines
}

// report appends w's summary line, if anything was suppressed.
func (w *peerWindow) report(peer string, lines []string) []string {
	if w.suppressed == 0 {
		return lines
	}
	return append(lines, fmt.Sprintf("suppressed %d similar lines from %s", w.suppressed, peer))
}

func (l *PeerLimiter) write(lines []string) {
	for _, s := range lines {
		l.log.Warn(s)
	}
}
