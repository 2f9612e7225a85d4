// Package fastpoetry is the Twisted tutorial's poetry server as a plugin:
// every connection receives the whole poem, then is closed.
package fastpoetry

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/plugin"
	"github.com/twistd-go/twistd/reactor"
	"github.com/twistd-go/twistd/service"
)

func init() {
	plugin.Register(plugin.Maker{
		Name:        "fastpoetry",
		Description: "a fast poetry service: sends the poem to every client, then closes",
		Long: `Serves the poem file to every TCP connection, then closes it. The poem is
read when the service starts; it must be a regular file of at most 64 MiB.
--port takes a port number (served on
--iface) or an endpoint string such as tcp:10000:interface=::1 or
unix:/run/poetry.sock.`,
		Options: options,
	})
}

func options(fs *pflag.FlagSet) plugin.Build {
	port := fs.StringP("port", "p", "10000", "port number or endpoint to listen on")
	poem := fs.String("poem", "", "file holding the poem to serve (required)")
	iface := fs.String("iface", "localhost", "interface to listen on when --port is a number")
	plugin.MarkRequired(fs, "poem")
	plugin.MarkPath(fs, "poem", plugin.PathUse{Max: MaxPoem})
	return func(env plugin.Env) (service.Service, error) {
		ep, err := Endpoint(*port, *iface)
		if err != nil {
			return nil, err
		}
		return New(env, ep, *poem), nil
	}
}

// Endpoint turns --port and --iface into an endpoint: a bare port number is
// served on iface, anything else is an endpoint string.
func Endpoint(port, iface string) (reactor.Endpoint, error) {
	return reactor.PortFlag(port, iface)
}

// New returns the service tree named env.Name: the poem (loaded at start)
// and the port serving it, in that order, like the tutorial's
// PoetryService + TCPServer.
func New(env plugin.Env, ep reactor.Endpoint, poemPath string) service.Service {
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	poem := &Poem{path: poemPath, log: log}
	port := reactor.NewPort("listener", ep, reactor.FactoryFunc(func(net.Addr) reactor.Protocol {
		return &protocol{poem: poem.Bytes()}
	}), log)
	port.System = env.Name
	port.MaxConnections = env.MaxConnections
	port.Metrics = env.Metrics.Port()
	c := service.NewCollection(env.Name, log)
	c.Add(poem)
	c.Add(port)
	return c
}

// MaxPoem is the largest poem served: generous for any poem, and a bound
// on what --poem /dev/zero or a runaway file can take.
const MaxPoem = 64 << 20

// Poem is a service holding the poem's bytes, read from disk at Start.
type Poem struct {
	path string
	log  *slog.Logger
	text atomic.Pointer[[]byte]
}

// Name returns "poem".
func (p *Poem) Name() string { return "poem" }

// Describe returns the poem's path.
func (p *Poem) Describe() string { return p.path }

// Start reads the poem: a regular file of at most MaxPoem bytes.
func (p *Poem) Start(context.Context) error {
	b, err := plugin.ReadFile(p.path, MaxPoem)
	if err != nil {
		return fmt.Errorf("poem %s: %w", p.path, err)
	}
	p.text.Store(&b)
	p.log.Info(fmt.Sprintf("loaded poem %s (%d bytes)", p.path, len(b)), "system", "poem")
	return nil
}

// Stop does nothing: the poem stays readable for connections still draining.
func (p *Poem) Stop(context.Context) error { return nil }

// Bytes returns the poem, or nil before Start.
func (p *Poem) Bytes() []byte {
	if b := p.text.Load(); b != nil {
		return *b
	}
	return nil
}

type protocol struct{ poem []byte }

func (p *protocol) ConnectionMade(t reactor.Transport) {
	// The poem is never modified, so what the socket does not take at once
	// is queued without a copy; LoseConnection sends it all, then closes.
	if _, err := t.WriteShared(p.poem); err == nil {
		t.LoseConnection()
	}
}

func (p *protocol) DataReceived([]byte)  {}
func (p *protocol) ConnectionLost(error) {}
