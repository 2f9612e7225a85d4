package echo

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/testutil"
)

// udpServer is a started datagram echo on 127.0.0.1 that counts the
// datagrams it handled, by whether they came from its own address.
type udpServer struct {
	addr     netip.AddrPort
	handled  atomic.Int64
	fromSelf atomic.Int64
	echo     *datagramEcho
	logs     *testutil.Buffer
}

// startUDP starts the echo; clock, if not nil, replaces its time.Now.
func startUDP(t *testing.T, rate int, clock func() time.Time) *udpServer {
	t.Helper()
	s := &udpServer{logs: &testutil.Buffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(s.logs, t.Output()), nil))
	s.echo = newDatagramEcho(rate, log)
	if clock != nil {
		s.echo.now = clock
	}
	count := reactor.DatagramFunc(func(pc net.PacketConn, p []byte, from net.Addr) {
		if from.String() == pc.LocalAddr().String() {
			s.fromSelf.Add(1)
		}
		s.echo.DatagramReceived(pc, p, from)
		s.handled.Add(1)
	})
	port := reactor.NewDatagramPort("udp", reactor.Endpoint{Kind: "tcp", Interface: "127.0.0.1"}, count, log)
	if err := port.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Stop(context.Background()) })
	s.addr = port.Addr().(*net.UDPAddr).AddrPort()
	return s
}

// spoof sends a UDP datagram with any source address and port through a
// raw socket (root only), as an attacker on the path can.
func spoof(t *testing.T, src, dst netip.AddrPort, payload string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if errors.Is(err, syscall.EPERM) {
		t.Skip("skipped: forging a source address needs a raw socket (root)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	pkt := make([]byte, 28+len(payload))
	pkt[0] = 0x45 // IPv4, 5-word header; the kernel fills in id and checksum
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8], pkt[9] = 64, syscall.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(pkt[12:], s4[:])
	copy(pkt[16:], d4[:])
	binary.BigEndian.PutUint16(pkt[20:], src.Port())
	binary.BigEndian.PutUint16(pkt[22:], dst.Port())
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // checksum 0: none (IPv4)
	copy(pkt[28:], payload)
	if err := syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: d4}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a counter, bounded, failing with what.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// probe sends msg from a fresh socket and returns the reply.
func probe(t *testing.T, to netip.AddrPort, msg string) string {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no echo of %q: %v", msg, err)
	}
	return string(buf[:n])
}

// One datagram forged to come from the server's own address and port is
// not echoed to itself (which would loop for ever, costing a core).
func TestForgedSelfDatagramDoesNotLoop(t *testing.T) {
	s := startUDP(t, 0, nil) // no rate limit: the drop alone must stop the loop
	spoof(t, s.addr, s.addr, "loop")
	waitFor(t, "the forged datagram", func() bool { return s.fromSelf.Load() >= 1 })
	time.Sleep(200 * time.Millisecond) // a negative: give a loop its chance
	if n := s.fromSelf.Load(); n != 1 {
		t.Fatalf("the forged datagram came back %d times: it loops", n-1)
	}
	if got := probe(t, s.addr, "still there"); got != "still there" {
		t.Fatalf("echo %q", got)
	}
	if !strings.Contains(s.logs.String(), "dropped a datagram from "+s.addr.String()+" (from this server's own address)") {
		t.Errorf("no line about the drop:\n%s", s.logs)
	}
}

// Datagrams from port 0 or a small service's port get no answer: two such
// services would answer each other for ever.
func TestServicePortsGetNoAnswer(t *testing.T) {
	s := startUDP(t, 0, nil)
	var socks []*net.UDPConn
	for _, port := range []uint16{7, 9, 13, 17, 19, 37} {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
		if err != nil {
			t.Skipf("skipped: cannot bind udp port %d: %v", port, err)
		}
		defer c.Close()
		socks = append(socks, c)
	}
	for _, c := range socks {
		if _, err := c.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(s.addr)); err != nil {
			t.Fatal(err)
		}
	}
	spoof(t, netip.MustParseAddrPort("127.0.0.1:0"), s.addr, "zero")
	waitFor(t, "all seven datagrams", func() bool { return s.handled.Load() == int64(len(socks)+1) })
	// The handler has returned for each, so any reply is already on its way.
	for _, c := range socks {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFrom(make([]byte, 10)); err == nil {
			t.Errorf("port %s got an answer of %d bytes", c.LocalAddr(), n)
		}
	}
	if got := probe(t, s.addr, "ordinary"); got != "ordinary" {
		t.Fatalf("echo %q", got)
	}
	if n := strings.Count(s.logs.String(), "dropped"); n != 1 {
		t.Errorf("%d drop lines, want one for the first of a spell:\n%s", n, s.logs)
	}
}

// Replies to one source address are limited per second; another address
// has a budget of its own.
func TestRatePerSourceAddress(t *testing.T) {
	now := time.Unix(1e9, 0)
	s := startUDP(t, 10, func() time.Time { return now }) // a clock that stands still
	c := dial(t, "127.0.0.1", s.addr)
	other := dial(t, "127.0.0.2", s.addr)
	send := func(c *net.UDPConn, n int) int {
		before := s.handled.Load()
		for range n {
			c.Write([]byte("x"))
		}
		waitFor(t, "the datagrams", func() bool { return s.handled.Load() == before+int64(n) })
		return replies(c)
	}
	if got := send(c, 50); got != 10 {
		t.Errorf("%d replies to 50 datagrams in one instant at 10/s, want 10", got)
	}
	if got := send(other, 5); got != 5 {
		t.Errorf("another address got %d replies of 5", got)
	}
	if !strings.Contains(s.logs.String(), "(over the rate limit)") {
		t.Errorf("no line about the rate limit:\n%s", s.logs)
	}
}

func dial(t *testing.T, from string, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// replies counts the datagrams waiting on c, reading until none comes for
// 100 ms (they were all sent before the handler returned).
func replies(c *net.UDPConn) int {
	n := 0
	buf := make([]byte, 10)
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return n
		}
		n++
	}
}

// The rate state stays bounded under forged source addresses.
func TestRateStateBounded(t *testing.T) {
	e := newDatagramEcho(5, slog.New(slog.DiscardHandler))
	now := time.Unix(1e9, 0)
	for i := range 3 * maxSources {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.allow(a, now)
	}
	if n := len(e.sources); n > maxSources {
		t.Fatalf("%d addresses tracked, bound %d", n, maxSources)
	}
}

// The daemon itself: a datagram forged from its own address is dropped
// with one line, and the echo keeps answering others.
func TestDaemonDropsForgedSelfDatagram(t *testing.T) {
	p := testutil.Start(t, "", "-n", "--logfile", "-", "echo", "--port", "0", "--iface", "127.0.0.1", "--udp")
	addr := p.ListenAddr(t)
	t.Cleanup(func() {
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM\n%s", code, p.Stdout)
		}
	})
	p.WaitFor(t, "listening on udp "+addr, 5*time.Second)
	self := netip.MustParseAddrPort(addr)
	spoof(t, self, self, "loop")
	p.WaitFor(t, "[echo,udp] WARNING: dropped a datagram from "+addr+" (from this server's own address)", 5*time.Second)
	if got := probe(t, self, "ping"); got != "ping" {
		t.Fatalf("echo %q", got)
	}
}
