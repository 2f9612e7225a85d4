package reactor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relayHub is a fan-out server for the tests: the first byte a client
// sends says what it is. 'R' registers a receiver; every later byte from a
// sender is a command, run in the sender's callback against every receiver
// registered so far.
type relayHub struct {
	mu        sync.Mutex
	receivers []*conn
	ready     chan struct{} // a receiver registered
	// command runs for each command byte a sender sends, in its callback.
	command func(from Transport, cmd byte, to []*conn)
}

type relayProto struct {
	h    *relayHub
	t    Transport
	role byte
}

func (p *relayProto) ConnectionMade(t Transport) { p.t = t }
func (p *relayProto) DataReceived(b []byte) {
	for _, cmd := range b {
		if p.role == 0 {
			p.role = cmd
			if cmd == 'R' {
				p.h.mu.Lock()
				p.h.receivers = append(p.h.receivers, p.t.(*conn))
				p.h.mu.Unlock()
				p.h.ready <- struct{}{}
			}
			continue
		}
		p.h.mu.Lock()
		to := append([]*conn(nil), p.h.receivers...)
		p.h.mu.Unlock()
		p.h.command(p.t, cmd, to)
	}
}
func (p *relayProto) ConnectionLost(error) {}

// startRelay starts a relayHub's port and connects n receivers.
func startRelay(t *testing.T, n int, setup func(*Port), command func(Transport, byte, []*conn)) (*testPort, []net.Conn) {
	t.Helper()
	h := &relayHub{ready: make(chan struct{}, n), command: command}
	tp := startPortWith(t, context.Background(), func() Protocol { return &relayProto{h: h} }, setup)
	rs := make([]net.Conn, n)
	for i := range rs {
		rs[i] = tp.dial(t)
		if _, err := rs[i].Write([]byte("R")); err != nil {
			t.Fatal(err)
		}
		<-h.ready
	}
	return tp, rs
}

// sender connects a client that sends cmds, one write each, after its role.
func sender(t *testing.T, tp *testPort, cmds ...string) net.Conn {
	t.Helper()
	c := tp.dial(t)
	for _, s := range append([]string{"S"}, cmds...) {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// readRecords reads n records of size bytes from c and checks they are
// writer w's, numbered from 0.
func readRecords(t *testing.T, c net.Conn, w, n, size int) {
	t.Helper()
	buf := make([]byte, size)
	for k := range n {
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("record %d of %d: %v", k, n, err)
		}
		if !bytes.Equal(buf, record(w, k, size)) {
			t.Fatalf("record %d is %d/%d: out of order or torn", k, binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:]))
		}
	}
}

// What a callback relays goes out when the callback returns, not before,
// in order, written by the callback's goroutine: the receivers' writers
// are never started when their sockets take it all.
func TestRelayWritesWhenTheCallbackReturns(t *testing.T) {
	const receivers, records, size = 3, 10, 100
	during := make(chan error, 1)
	tp, rs := startRelay(t, receivers, nil, func(from Transport, _ byte, to []*conn) {
		for k := range records {
			for _, b := range to {
				if _, err := from.Relay(b, record(0, k, size)); err != nil {
					during <- err
					return
				}
			}
		}
		// Still in the callback: nothing has reached a socket.
		var err error
		for i, b := range to {
			if n := b.sent.Load(); n != 0 {
				err = errors.New("receiver " + string(rune('0'+i)) + " was sent bytes before the callback returned")
			}
		}
		during <- err
	})
	sender(t, tp, "x")
	if err := <-during; err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		readRecords(t, r, 0, records, size)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for c := range tp.conns {
		c.wmu.Lock()
		up := c.out != nil && c.out.writerUp
		c.wmu.Unlock()
		if up {
			t.Errorf("a writer goroutine was started for %v; the relaying callback should have written it all", c.RemoteAddr())
		}
	}
}

// A relay larger than the socket takes leaves the rest to the writer, and
// what later callbacks relay queues behind it: a receiver that starts
// reading late gets every record, in order.
func TestRelayBeyondTheSocketKeepsOrder(t *testing.T) {
	const records, size = 2000, 16 << 10 // 32 MiB: more than loopback buffers hold
	var mu sync.Mutex
	next := 0
	queued := make(chan int, 2)
	tp, rs := startRelay(t, 1, func(p *Port) { p.MaxQueued = 64 << 20 }, func(from Transport, _ byte, to []*conn) {
		mu.Lock()
		defer mu.Unlock()
		for range records / 2 {
			from.Relay(to[0], record(1, next, size))
			next++
		}
		// Released after this returns; the queue left is read below.
		go func() { time.Sleep(100 * time.Millisecond); queued <- to[0].queuedBytes() }()
	})
	s := sender(t, tp, "a")
	if q := <-queued; q == 0 {
		t.Fatal("the socket took 16 MiB without the receiver reading: this test needs a partial write")
	}
	s.Write([]byte("b")) // relayed while the writer has the first half
	<-queued
	rs[0].SetDeadline(time.Now().Add(30 * time.Second))
	readRecords(t, rs[0], 1, records, size)
}

// Relay from a goroutine that is not the connection's callback is
// WriteShared: the bytes go out without a callback returning.
func TestRelayOutsideACallbackWritesAtOnce(t *testing.T) {
	start := make(chan Transport, 1)
	tp, rs := startRelay(t, 1, nil, func(from Transport, _ byte, to []*conn) {
		start <- from
	})
	sender(t, tp, "x")
	from := <-start
	tp.mu.Lock()
	var to *conn
	for c := range tp.conns {
		if c != from.(*conn) {
			to = c
		}
	}
	tp.mu.Unlock()
	if _, err := from.Relay(to, record(2, 0, 64)); err != nil {
		t.Fatal(err)
	}
	readRecords(t, rs[0], 2, 1, 64)
}

// A receiver closed by the relaying callback still gets what was relayed
// before, then EOF; a callback that panics after relaying closes its own
// connection only, and the receivers still get what it relayed.
func TestRelayHeldThroughCloseAndPanic(t *testing.T) {
	const size = 256
	tp, rs := startRelay(t, 2, nil, func(from Transport, cmd byte, to []*conn) {
		for k := range 3 {
			for _, b := range to {
				from.Relay(b, record(3, k, size))
			}
		}
		switch cmd {
		case 'c':
			to[0].LoseConnection()
		case 'p':
			panic("told to panic")
		}
	})
	s := sender(t, tp, "c")
	readRecords(t, rs[0], 3, 3, size)
	if n, err := rs[0].Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after the relayed records: %d bytes, %v; want EOF", n, err)
	}
	readRecords(t, rs[1], 3, 3, size)
	s.Close()

	p := sender(t, tp, "p")
	readRecords(t, rs[1], 3, 3, size)
	if _, err := io.ReadAll(p); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("panicking sender: %v", err)
	}
	eventually(t, "the panic's log line", func() bool { return tp.count("panic in protocol: told to panic") == 1 })
}

// What DataReceived relays waits while the sender's next input is already
// in the socket, for at most maxRelayRounds reads: the peers get several
// reads' worth in one write, and a sender that never pauses still has its
// messages delivered.
func TestRelayWaitsForInputAlreadyThere(t *testing.T) {
	const size, cmds = 64, 2 * (maxRelayRounds + 1)
	seen := make(chan int64, cmds) // what the receiver was sent before each command
	tp, rs := startRelay(t, 1, func(p *Port) { p.ReadBufferSize, p.MaxReadBufferSize = 1, 1 }, func(from Transport, _ byte, to []*conn) {
		k := len(seen)
		seen <- to[0].sent.Load()
		from.Relay(to[0], record(4, k, size))
	})
	// One write: every command is in the server's socket before the
	// first is read, and each is a read of its own.
	sender(t, tp, string(bytes.Repeat([]byte{'x'}, cmds)))
	readRecords(t, rs[0], 4, cmds, size)
	for i := range cmds {
		n := <-seen
		want := int64(0)
		if i > maxRelayRounds {
			want = (maxRelayRounds + 1) * size
		}
		if n != want {
			t.Fatalf("before command %d the receiver had been sent %d bytes, want %d", i, n, want)
		}
	}
}

// Relayed output is held only while the peer's queue is short: a sender
// whose reads each relay more than half the high-water mark to a peer
// that reads must not push it to the hard limit by holding (here the
// held total would pass MaxQueued at the sixth read and drop the peer).
func TestRelayHoldsOnlyShortQueues(t *testing.T) {
	const size, cmds = 48 << 10, 6
	tp, rs := startRelay(t, 1, func(p *Port) {
		p.ReadBufferSize, p.MaxReadBufferSize = 1, 1
		p.HighWater, p.MaxQueued = 64<<10, 256<<10
	}, func(from Transport, cmd byte, to []*conn) {
		from.Relay(to[0], record(5, int(cmd-'0'), size))
	})
	sender(t, tp, "012345") // one write: six reads, each with input behind it
	rs[0].SetDeadline(time.Now().Add(30 * time.Second))
	readRecords(t, rs[0], 5, cmds, size)
	if n := tp.count("outgoing queue full"); n != 0 {
		t.Fatalf("the reading peer was dropped (%d overflow lines)", n)
	}
}
