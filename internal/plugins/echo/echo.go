// Package echo is the echo service (RFC 862) as a plugin: every byte a TCP
// client sends comes back; with --udp every datagram is sent back to its
// sender too, unless it could start a loop (see udp.go).
package echo

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/plugin"
	"github.com/twistd-go/twistd/reactor"
	"github.com/twistd-go/twistd/service"
)

func init() {
	plugin.Register(plugin.Maker{
		Name:        "echo",
		Description: "an echo service (RFC 862): sends back every byte it receives",
		Long: `Sends back every byte a TCP client sends (RFC 862). With --udp it also
answers UDP datagrams on the same interface and port number.

--port takes a port number (served on --iface) or an endpoint string such
as tcp:8000:interface=::1 or unix:/run/echo.sock.

A client that sends without reading is not buffered for: the echo waits
until the client reads, the server stops reading from it meanwhile, and
after --write-timeout without progress the connection is closed. The
runner's --max-connections makes clients beyond the limit wait, unread,
until a slot frees; --max-waiting bounds that queue (by default the
descriptor limit does).

A UDP source address is easily forged, and an echo that answers another
echo (or itself) loops forever. So, as BSD inetd does for its own small
services, datagrams are dropped unanswered when they come from this
server's own address and port, from port 0, or from the port of a small
service that answers anything (echo 7, discard 9, daytime 13, qotd 17,
chargen 19, time 37); and replies to one source address are limited to
--udp-rate a second. Drops are counted and logged at most once a minute.`,
		Options: options,
	})
}

// Config is the echo service's settings.
type Config struct {
	Endpoint     reactor.Endpoint
	UDP          bool
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	MaxWaiting   int
	// UDPRate limits the replies to one source address, per second (0: no
	// limit).
	UDPRate int
	// MaxConnections is the runner's --max-connections (0: no limit).
	MaxConnections int
	// Metrics counts the TCP port's connections (nil: not counted).
	Metrics *plugin.Metrics
}

func options(fs *pflag.FlagSet) plugin.Build {
	port := fs.StringP("port", "p", "8000", "port number or endpoint to listen on")
	iface := fs.String("iface", "localhost", "interface to listen on when --port is a number")
	udp := fs.Bool("udp", false, "also echo UDP datagrams on the same port")
	idle := fs.Duration("idle-timeout", 0, "close a connection after this long without traffic (0 = never)")
	wt := fs.Duration("write-timeout", time.Minute, "close a connection whose client reads nothing of the echo for this long (0 = never)")
	maxWaiting := fs.Int("max-waiting", 0, "with the runner's --max-connections: close new clients when this many already wait (0 = bounded by the descriptor limit)")
	udpRate := fs.Int("udp-rate", 100, "with --udp: answer at most this many datagrams a second from one source address (0 = no limit)")
	return func(env plugin.Env) (service.Service, error) {
		ep, err := reactor.PortFlag(*port, *iface)
		if err != nil {
			return nil, err
		}
		switch {
		case *udp && ep.Kind != "tcp":
			return nil, fmt.Errorf("--udp needs a TCP port, not %s", ep)
		case *idle < 0:
			return nil, errors.New("invalid value for --idle-timeout: must not be negative")
		case *wt < 0:
			return nil, errors.New("invalid value for --write-timeout: must not be negative")
		case *maxWaiting < 0:
			return nil, errors.New("invalid value for --max-waiting: must not be negative")
		case *udpRate < 0:
			return nil, errors.New("invalid value for --udp-rate: must not be negative")
		}
		return New(env.Name, Config{
			Endpoint: ep, UDP: *udp, IdleTimeout: *idle, WriteTimeout: *wt, MaxWaiting: *maxWaiting, UDPRate: *udpRate,
			MaxConnections: env.MaxConnections, Metrics: env.Metrics,
		}, env.Log), nil
	}
}

// New returns the service tree: the TCP port and, with UDP, the datagram
// port that follows its address.
func New(name string, cfg Config, log *slog.Logger) service.Service {
	port := reactor.NewPort("tcp", cfg.Endpoint, Factory, log)
	port.System = name
	port.IdleTimeout = cfg.IdleTimeout
	port.WriteTimeout = cfg.WriteTimeout
	port.MaxWaiting = cfg.MaxWaiting
	port.MaxConnections = cfg.MaxConnections
	port.Metrics = cfg.Metrics.Port()
	c := service.NewCollection(name, log)
	c.Add(port)
	if cfg.UDP {
		udp := reactor.NewDatagramPort("udp", cfg.Endpoint, newDatagramEcho(cfg.UDPRate, log.With("system", name+",udp")), log)
		udp.System = name
		udp.Follow = port
		c.Add(udp)
	}
	return c
}

// Factory builds the echo protocol.
var Factory = reactor.FactoryFunc(func(net.Addr) reactor.Protocol { return &protocol{} })

type protocol struct{ t reactor.Transport }

func (p *protocol) ConnectionMade(t reactor.Transport) { p.t = t }

// DataReceived writes the bytes straight back. Write never blocks; once
// the echo queued for a client that does not read passes the transport's
// high-water mark, the transport stops reading from it, so nothing piles
// up in memory and the client's further bytes wait in kernel buffers.
func (p *protocol) DataReceived(b []byte) { p.t.Write(b) }

func (p *protocol) ConnectionLost(error) {}

// StopRequested ends the session at shutdown: every byte received has
// already been echoed, so there is nothing left to finish.
func (p *protocol) StopRequested() { p.t.LoseConnection() }
