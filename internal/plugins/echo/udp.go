package echo

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// smallServicePorts are the ports of the services that answer any
// datagram (RFC 862, 863, 867, 865, 864, 868), and port 0, which no real
// sender uses: BSD inetd's internal services refuse them, since two such
// services answering each other never stop.
var smallServicePorts = map[uint16]bool{0: true, 7: true, 9: true, 13: true, 17: true, 19: true, 37: true}

// maxSources bounds the per-address rate state: a flood from forged
// addresses must not grow it without end.
const maxSources = 4096

// datagramEcho answers datagrams that cannot start a loop, at a bounded
// rate per source address. Calls come one at a time from the port's
// goroutine, so it needs no lock.
type datagramEcho struct {
	rate    float64 // replies a second to one address; 0: no limit
	log     *slog.Logger
	now     func() time.Time
	sources map[netip.Addr]*bucket
	locals  map[netip.Addr]bool // this host's addresses, for a wildcard bind

	dropped     [3]int // by reason, since the last report
	lastReport  time.Time
	reportEvery time.Duration
}

// Why a datagram was dropped, in the order of dropReasons.
const (
	fromSelf = iota
	fromServicePort
	overRate
)

var dropReasons = [...]string{"from this server's own address", "from a small service's port or port 0", "over the rate limit"}

// bucket is a token bucket: tokens refill at the rate, up to one second's
// worth.
type bucket struct {
	tokens float64
	last   time.Time
}

func newDatagramEcho(rate int, log *slog.Logger) *datagramEcho {
	return &datagramEcho{rate: float64(rate), log: log, now: time.Now, sources: map[netip.Addr]*bucket{}, reportEvery: time.Minute}
}

// DatagramReceived sends p back to its sender unless dropping it is wiser.
func (e *datagramEcho) DatagramReceived(pc net.PacketConn, p []byte, from net.Addr) {
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return
	}
	src := unmap(ua.AddrPort())
	now := e.now()
	switch {
	case e.isSelf(pc.LocalAddr(), src):
		e.drop(fromSelf, src, now)
	case smallServicePorts[src.Port()]:
		e.drop(fromServicePort, src, now)
	case !e.allow(src.Addr(), now):
		e.drop(overRate, src, now)
	default:
		pc.WriteTo(p, from)
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// isSelf reports whether src is the socket's own address: the same port,
// and the same address or, for a socket bound to every interface, any
// address of this host.
func (e *datagramEcho) isSelf(local net.Addr, src netip.AddrPort) bool {
	la, ok := local.(*net.UDPAddr)
	if !ok {
		return false
	}
	own := unmap(la.AddrPort())
	if src.Port() != own.Port() {
		return false
	}
	if !own.Addr().IsUnspecified() {
		return src.Addr() == own.Addr()
	}
	if src.Addr().IsLoopback() {
		return true
	}
	if e.locals == nil {
		e.locals = map[netip.Addr]bool{}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					e.locals[ip.Unmap()] = true
				}
			}
		}
	}
	return e.locals[src.Addr()]
}

// allow takes a token from addr's bucket, if it has one.
func (e *datagramEcho) allow(addr netip.Addr, now time.Time) bool {
	if e.rate <= 0 {
		return true
	}
	b := e.sources[addr]
	if b == nil {
		if len(e.sources) >= maxSources {
			e.forgetIdle(now)
		}
		b = &bucket{tokens: e.rate, last: now}
		e.sources[addr] = b
	}
	b.tokens = min(e.rate, b.tokens+now.Sub(b.last).Seconds()*e.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// forgetIdle drops the buckets that have refilled (their state is that of
// a new one); if every address is busy it starts afresh rather than grow.
func (e *datagramEcho) forgetIdle(now time.Time) {
	for a, b := range e.sources {
		if now.Sub(b.last) >= time.Second {
			delete(e.sources, a)
		}
	}
	if len(e.sources) >= maxSources {
		clear(e.sources)
	}
}

// drop counts a datagram not answered. The first drop after a quiet
// spell is logged at once, with its sender; later ones are summed up at
// most once per reportEvery, so a flood cannot flood the log.
func (e *datagramEcho) drop(reason int, src netip.AddrPort, now time.Time) {
	e.dropped[reason]++
	if e.lastReport.IsZero() || now.Sub(e.lastReport) >= e.reportEvery {
		total := 0
		for _, n := range e.dropped {
			total += n
		}
		msg := fmt.Sprintf("dropped a datagram from %s (%s): answering it could loop or flood", src, dropReasons[reason])
		if total > 1 {
			msg = fmt.Sprintf("dropped %d datagrams since the last report (%d %s, %d %s, %d %s), the last from %s",
				total, e.dropped[fromSelf], dropReasons[fromSelf], e.dropped[fromServicePort], dropReasons[fromServicePort], e.dropped[overRate], dropReasons[overRate], src)
		}
		e.log.Warn(msg)
		e.dropped = [3]int{}
		e.lastReport = now
	}
}
