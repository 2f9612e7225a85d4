package reactor

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pairs returns n connected loopback TCP pairs: the server sides (which
// the poller watches) and the client sides.
func pairs(t *testing.T, n int) (servers, clients []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers, clients = append(servers, s), append(clients, c)
	}
	t.Cleanup(func() {
		for i := range servers {
			servers[i].Close()
			clients[i].Close()
		}
	})
	return servers, clients
}

func rawConn(t *testing.T, c net.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// wakeFunc is a waker that calls itself.
type wakeFunc func()

func (f wakeFunc) wakeUp() { f() }

// readNow reads what the socket holds without waiting.
func readNow(rc syscall.RawConn, buf []byte) (int, error) {
	var n int
	var err error
	cerr := rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), buf)
		return true
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// Armed idle sockets cost no goroutine; data on some of them wakes
// exactly those, once each, and the socket is still non-blocking for Go.
func TestPollerWakesOnlyTheReadable(t *testing.T) {
	const n, active = 1000, 50
	servers, clients := pairs(t, n)
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	before := runtime.NumGoroutine()
	woken := make(chan int, n)
	for i, s := range servers {
		if _, err := p.arm(rawConn(t, s), wakeFunc(func() { woken <- i })); err != nil {
			t.Fatal(err)
		}
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Fatalf("%d idle sockets armed: %d goroutines, was %d", n, g, before)
	}
	for i := 0; i < n; i += n / active {
		clients[i].Write([]byte("x"))
	}
	got := map[int]int{}
	deadline := time.After(10 * time.Second)
	for len(got) < active {
		select {
		case i := <-woken:
			got[i]++
		case <-deadline:
			t.Fatalf("%d of %d readable sockets woken", len(got), active)
		}
	}
	select {
	case i := <-woken:
		t.Fatalf("socket %d woken twice or without data", i)
	case <-time.After(200 * time.Millisecond):
	}
	for i, c := range got {
		if i%(n/active) != 0 || c != 1 {
			t.Fatalf("socket %d woken %d times", i, c)
		}
		buf := make([]byte, 4)
		if k, err := readNow(rawConn(t, servers[i]), buf); k != 1 || err != nil {
			t.Fatalf("socket %d: read %d, %v", i, k, err)
		}
		// Nothing more: the read must not block.
		if _, err := readNow(rawConn(t, servers[i]), buf); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("socket %d: second read: %v, want EAGAIN", i, err)
		}
	}
	if got := p.pending(); got != n-active {
		t.Fatalf("%d still armed, want %d", got, n-active)
	}
	// Go's own reads and deadlines still work on a watched socket.
	servers[1].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := servers[1].Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline on a watched socket: %v", err)
	}
}

// A cancelled wait never fires; a descriptor number reused by the next
// connection wakes only that connection; a hang-up wakes its socket.
func TestPollerCancelReuseAndHangUp(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	servers, clients := pairs(t, 1)
	var fired atomic.Int32
	tok, err := p.arm(rawConn(t, servers[0]), wakeFunc(func() { fired.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	if !p.cancel(tok) {
		t.Fatal("cancel of a pending wait reported it fired")
	}
	clients[0].Write([]byte("late"))
	time.Sleep(100 * time.Millisecond)
	if fired.Load() != 0 {
		t.Fatal("a cancelled wait fired")
	}
	servers[0].Close()

	// The next socket most likely gets the same descriptor number.
	s2, c2 := pairs(t, 1)
	second := make(chan struct{}, 1)
	if _, err := p.arm(rawConn(t, s2[0]), wakeFunc(func() { second <- struct{}{} })); err != nil {
		t.Fatal(err)
	}
	c2[0].Close() // a hang-up is readable too
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("a hang-up did not wake its socket")
	}
	if fired.Load() != 0 {
		t.Fatal("the old connection was woken for the new one")
	}
	if p.pending() != 0 {
		t.Fatalf("%d still armed", p.pending())
	}
}
