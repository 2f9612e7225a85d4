package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
)

// DatagramHandler receives the datagrams of a DatagramPort (Twisted's
// DatagramProtocol). Calls come one at a time from the port's goroutine;
// p is only valid during the call.
type DatagramHandler interface {
	DatagramReceived(pc net.PacketConn, p []byte, from net.Addr)
}

// DatagramFunc adapts a function to DatagramHandler.
type DatagramFunc func(pc net.PacketConn, p []byte, from net.Addr)

// DatagramReceived calls f.
func (f DatagramFunc) DatagramReceived(pc net.PacketConn, p []byte, from net.Addr) { f(pc, p, from) }

// DatagramPort is a UDP socket as a service: bound in PrivilegedStart, read
// in Start, closed in Stop.
type DatagramPort struct {
	name string
	ep   Endpoint
	h    DatagramHandler
	log  *slog.Logger

	// Follow, if set, is a TCP Port bound before this one (earlier in the
	// same collection): this port takes its interface and actual port
	// number, so "port 0" gives both the same number.
	Follow *Port
	// System tags log lines; it defaults to the service name.
	System string

	mu   sync.Mutex
	pc   net.PacketConn
	done chan struct{} // closed when the read loop returns
}

// NewDatagramPort returns a UDP service on ep's interface and port (ep
// must be a tcp-style endpoint; only its address is used). A nil logger
// means slog.Default.
func NewDatagramPort(name string, ep Endpoint, h DatagramHandler, log *slog.Logger) *DatagramPort {
	if log == nil {
		log = slog.Default()
	}
	return &DatagramPort{name: name, ep: ep, h: h, log: log, System: name}
}

// Name returns the service name.
func (d *DatagramPort) Name() string { return d.name }

// Describe returns the address served.
func (d *DatagramPort) Describe() string {
	return "udp:" + net.JoinHostPort(d.ep.Interface, strconv.Itoa(d.ep.Port))
}

// Addr returns the bound address, or nil before binding.
func (d *DatagramPort) Addr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pc == nil {
		return nil
	}
	return d.pc.LocalAddr()
}

// PrivilegedStart binds the socket.
func (d *DatagramPort) PrivilegedStart(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pc != nil {
		return nil
	}
	if d.ep.Kind != "tcp" {
		return fmt.Errorf("udp needs a tcp-style endpoint, not %s", d.ep)
	}
	addr := net.JoinHostPort(d.ep.Interface, strconv.Itoa(d.ep.Port))
	if d.Follow != nil {
		ta, ok := d.Follow.Addr().(*net.TCPAddr)
		if !ok {
			return fmt.Errorf("udp: %s is not bound yet", d.Follow.Name())
		}
		addr = ta.String()
	}
	pc, err := d.listen(ctx, addr)
	if err != nil {
		return err
	}
	d.pc = pc
	d.log = d.log.With(systemKey, d.System+",udp")
	d.log.Info("listening on udp " + pc.LocalAddr().String())
	return nil
}

// listen binds addr, or adopts the socket a replacement inherited for it.
func (d *DatagramPort) listen(ctx context.Context, addr string) (net.PacketConn, error) {
	if f, ok := adopted(ctx, udpKey(d.ep)); ok {
		defer f.Close()
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return nil, fmt.Errorf("adopting the inherited udp socket %s: %w", addr, err)
		}
		return pc, nil
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on udp %s: %w", addr, bareErr(err))
	}
	return pc, nil
}

// Start binds if needed and starts reading datagrams.
func (d *DatagramPort) Start(ctx context.Context) error {
	if err := d.PrivilegedStart(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = make(chan struct{})
		go d.readLoop(d.pc, d.done)
	}
	return nil
}

func (d *DatagramPort) readLoop(pc net.PacketConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				d.log.Error(fmt.Sprintf("read: %v; no longer serving", err))
			}
			return
		}
		d.deliver(pc, buf[:n], from)
	}
}

// deliver contains a handler's panic to the one datagram.
func (d *DatagramPort) deliver(pc net.PacketConn, p []byte, from net.Addr) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error(fmt.Sprintf("panic in datagram handler (from %s): %v\n%s", from, r, debug.Stack()))
		}
	}()
	d.h.DatagramReceived(pc, p, from)
}

// Stop closes the socket and waits for the read loop.
func (d *DatagramPort) Stop(context.Context) error {
	d.mu.Lock()
	pc, done := d.pc, d.done
	d.mu.Unlock()
	if pc == nil {
		return nil
	}
	if err := pc.Close(); err == nil {
		d.log.Info("stopped listening on udp " + pc.LocalAddr().String())
	}
	if done != nil {
		<-done
	}
	return nil
}
