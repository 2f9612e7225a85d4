package reactor

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Sockets pass from a running process to its replacement on a reload: the
// old one hands over every listening socket, the new one adopts those
// whose endpoints it still serves and binds only the rest. Both accept
// from the same kernel queue until the old one, told its socket was
// handed over, stops accepting without draining that queue.

// Socket is a bound socket a replacement may adopt, under the key of the
// endpoint it was bound for.
type Socket struct {
	Key  string
	Conn syscall.Conn
}

// Adopter gives a port the socket a replacement inherited for key, if any.
type Adopter func(key string) (*os.File, bool)

type adopterKey struct{}

// WithAdopter returns a ctx for PrivilegedStart whose ports adopt
// inherited sockets through take before binding anything.
func WithAdopter(ctx context.Context, take Adopter) context.Context {
	return context.WithValue(ctx, adopterKey{}, take)
}

func adopted(ctx context.Context, key string) (*os.File, bool) {
	take, _ := ctx.Value(adopterKey{}).(Adopter)
	if take == nil {
		return nil, false
	}
	return take(key)
}

// adopt returns the listener inherited for ep, if any.
func (ep Endpoint) adopt(ctx context.Context) (net.Listener, bool, error) {
	f, ok := adopted(ctx, ep.Key())
	if !ok {
		return nil, false, nil
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, true, fmt.Errorf("adopting the inherited socket of %s: %w", ep, err)
	}
	// The file is ours now: removed at a stop, unless handed over again.
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return ln, true, nil
}

// udpKey is the handover key of a datagram socket on ep's address.
func udpKey(ep Endpoint) string { return "udp:" + ep.Key() }

// Sockets returns the port's bound socket, for a replacement to inherit.
func (p *Port) Sockets() []Socket {
	p.mu.Lock()
	defer p.mu.Unlock()
	sc, ok := p.ln.(syscall.Conn)
	if p.ln == nil || !ok {
		return nil
	}
	return []Socket{{Key: p.ep.Key(), Conn: sc}}
}

// HandOver gives the port's socket to a replacement: the port stops
// accepting at once, without draining the listen queue (its clients are
// the replacement's), and leaves a unix socket's file in place. The
// connections in flight go on until they end or Stop.
func (p *Port) HandOver() {
	p.mu.Lock()
	p.handedOver = true
	if ul, ok := p.ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	p.mu.Unlock()
	p.stopListening()
}

// Busy is how many clients the port still serves or holds waiting.
func (p *Port) Busy() int { return p.Connections() + p.Waiting() }

// Sockets returns the bound datagram socket, for a replacement to inherit.
func (d *DatagramPort) Sockets() []Socket {
	d.mu.Lock()
	defer d.mu.Unlock()
	sc, ok := d.pc.(syscall.Conn)
	if d.pc == nil || !ok {
		return nil
	}
	return []Socket{{Key: udpKey(d.ep), Conn: sc}}
}

// HandOver gives the socket to a replacement: this process stops reading
// it (closing only its own descriptor).
func (d *DatagramPort) HandOver() { d.Stop(context.Background()) }

// Busy is 0: a datagram is answered when it arrives.
func (d *DatagramPort) Busy() int { return 0 }
