// Package quote is a twistd plugin of its own module: RFC 865's quote of
// the day over TCP (a quote per connection, then close) and, with --udp,
// UDP (a quote in answer to any datagram). It uses only twistd's public
// packages.
package quote

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/plugin"
	"github.com/twistd-go/twistd/reactor"
	"github.com/twistd-go/twistd/service"
)

// maxQuote is RFC 865's limit: a quote should be shorter than 512
// characters.
const maxQuote = 512

const defaultQuote = "The best way to predict the future is to invent it. (Alan Kay)\r\n"

func init() {
	plugin.Register(plugin.Maker{
		Name:        "qotd",
		Description: "quote of the day (RFC 865) over TCP and UDP",
		Long:        "Sends a quote to every TCP client, then closes; with --udp also answers\nevery datagram with the quote.",
		Options:     options,
	})
}

func options(fs *pflag.FlagSet) plugin.Build {
	port := fs.String("port", "1717", "port or endpoint to listen on (RFC 865 uses 17)")
	iface := fs.String("iface", "localhost", "interface to listen on")
	file := fs.String("quote", "", "file holding the quote (default: a built-in one)")
	udp := fs.Bool("udp", false, "answer UDP datagrams on the same port too")
	plugin.MarkPath(fs, "quote", plugin.PathUse{Max: maxQuote, Early: true})
	return func(env plugin.Env) (service.Service, error) {
		ep, err := reactor.PortFlag(*port, *iface)
		if err != nil {
			return nil, err
		}
		if *udp && ep.Kind != "tcp" {
			return nil, errors.New("--udp needs a TCP port, not " + ep.String())
		}
		q := &quote{path: *file, text: []byte(defaultQuote)}
		top := service.NewCollection(env.Name, env.Log)
		top.Add(q)
		tcp := reactor.NewPort("tcp", ep, reactor.FactoryFunc(func(net.Addr) reactor.Protocol {
			return &sender{q: q}
		}), env.Log)
		tcp.System = env.Name
		top.Add(tcp)
		if *udp {
			d := reactor.NewDatagramPort("udp", ep, reactor.DatagramFunc(func(pc net.PacketConn, _ []byte, from net.Addr) {
				pc.WriteTo(q.text, from)
			}), env.Log)
			d.Follow = tcp
			d.System = env.Name
			top.Add(d)
		}
		return top, nil
	}
}

// quote holds the quote, read from --quote in the privileged step.
type quote struct {
	path string
	text []byte
}

func (q *quote) Name() string { return "quote" }

// PrivilegedStart reads the quote as the starting user, before any
// listener serves.
func (q *quote) PrivilegedStart(context.Context) error {
	if q.path == "" {
		return nil
	}
	b, err := plugin.ReadFile(q.path, maxQuote)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return errors.New("quote " + q.path + " is empty")
	}
	q.text = b
	return nil
}

func (q *quote) Start(context.Context) error { return nil }

func (q *quote) Stop(context.Context) error { return nil }

// sender sends the quote and closes (RFC 865 over TCP).
type sender struct{ q *quote }

func (s *sender) ConnectionMade(t reactor.Transport) {
	t.Write(s.q.text)
	t.LoseConnection()
}

func (s *sender) DataReceived([]byte) {}

func (s *sender) ConnectionLost(error) {}
