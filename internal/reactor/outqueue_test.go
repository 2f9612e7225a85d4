package reactor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// flooder writes from goroutines of its own (as a fan-out does) once
// connected; what its writes return and how the connection ended are kept.
type flooder struct {
	t       Transport
	writers int
	each    int  // writes per writer
	size    int  // bytes per write
	lose    bool // LoseConnection after every writer finished
	done    chan struct{}
	lost    chan error
	mu      sync.Mutex
	errs    []error
	slow    chan struct{} // PeerSlow, PeerCaughtUp seen (FlowWatcher)
	caught  chan struct{}
	blocked time.Duration // the longest single Write
	// hold, if set, keeps the writers back until it is closed: a flood
	// that starts at once may reset the connection before the client's
	// connect has returned.
	hold chan struct{}
}

func newFlooder(writers, each, size int) *flooder {
	return &flooder{writers: writers, each: each, size: size, done: make(chan struct{}), lost: make(chan error, 1),
		slow: make(chan struct{}, 100), caught: make(chan struct{}, 100)}
}

// record makes writer w's k-th write: a 4-byte writer number and a 4-byte
// sequence number, repeated to size, so a reader can tell order and
// wholeness.
func record(w, k, size int) []byte {
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		binary.BigEndian.PutUint32(b[i:], uint32(w))
		binary.BigEndian.PutUint32(b[i+4:], uint32(k))
	}
	return b
}

func (f *flooder) ConnectionMade(t Transport) {
	f.t = t
	var wg sync.WaitGroup
	for w := range f.writers {
		wg.Go(func() {
			if f.hold != nil {
				<-f.hold
			}
			for k := range f.each {
				p := record(w, k, f.size)
				start := time.Now()
				var err error
				if w%2 == 0 {
					_, err = t.Write(p)
					clear(p) // the transport must have copied what it kept
				} else {
					_, err = t.WriteShared(p) // p is never touched again
				}
				f.mu.Lock()
				f.blocked = max(f.blocked, time.Since(start))
				if err != nil {
					f.errs = append(f.errs, err)
				}
				f.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		if f.lose {
			f.t.LoseConnection()
		}
		close(f.done)
	}()
}
func (f *flooder) DataReceived([]byte)      {}
func (f *flooder) ConnectionLost(err error) { f.lost <- err }
func (f *flooder) PeerSlow()                { f.slow <- struct{}{} }
func (f *flooder) PeerCaughtUp()            { f.caught <- struct{}{} }

// Writes (copied or shared) from many goroutines arrive whole and, per
// goroutine, in order;
// LoseConnection after them still delivers every byte, then EOF; a write
// after it is refused.
func TestWritesOrderedWholeAndFlushed(t *testing.T) {
	const writers, each, size = 8, 200, 1000
	f := newFlooder(writers, each, size)
	f.lose = true
	tp := startPortWith(t, context.Background(), func() Protocol { return f }, func(p *Port) { p.MaxQueued = 64 << 20 })
	c := tp.dial(t)
	<-f.done // everything queued before the client reads a byte
	data, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != writers*each*size {
		t.Fatalf("read %d bytes, want %d", len(data), writers*each*size)
	}
	next := make([]int, writers)
	for off := 0; off < len(data); off += size {
		rec := data[off : off+size]
		w, k := int(binary.BigEndian.Uint32(rec)), int(binary.BigEndian.Uint32(rec[4:]))
		if w >= writers || !bytes.Equal(rec, record(w, k, size)) {
			t.Fatalf("record at %d is torn or interleaved", off)
		}
		if k != next[w] {
			t.Fatalf("writer %d: record %d after %d", w, k, next[w]-1)
		}
		next[w]++
	}
	if _, err := f.t.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after LoseConnection: %v, want net.ErrClosed", err)
	}
	if err := <-f.lost; err != nil {
		t.Fatalf("ConnectionLost(%v), want nil", err)
	}
}

// A peer that reads nothing does not block its writers: they queue up to
// the hard limit, the connection is closed with a line naming the peer
// and the bytes dropped (once), and ConnectionLost says why.
func TestNonReaderDroppedAtHardLimit(t *testing.T) {
	const limit = 1 << 20
	f := newFlooder(4, 1000, 16<<10) // 64 MiB offered
	f.hold = make(chan struct{})
	tp := startPortWith(t, context.Background(), func() Protocol { return f }, func(p *Port) { p.MaxQueued = limit })
	c := tp.dial(t)
	c.Write([]byte("x")) // input the paused connection must not read
	close(f.hold)
	select {
	case err := <-f.lost:
		if !errors.Is(err, ErrOutputQueueFull) {
			t.Fatalf("ConnectionLost(%v), want ErrOutputQueueFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection to a non-reader not closed at the hard limit")
	}
	<-f.done
	f.mu.Lock()
	blocked, errs := f.blocked, f.errs
	f.mu.Unlock()
	if len(errs) == 0 || !errors.Is(errs[0], ErrOutputQueueFull) && !errors.Is(errs[0], net.ErrClosed) {
		t.Fatalf("writes failed with %v", errs)
	}
	if blocked > time.Second {
		t.Fatalf("a Write blocked for %v", blocked)
	}
	want := fmt.Sprintf("closing the connection to %s, which is not reading", c.LocalAddr())
	// One line however many writers overflowed at once. (PeerSlow may
	// lose the race against a burst that overflows at once; its delivery
	// is TestHighWaterPausesThenResumes's.)
	eventually(t, "the drop's log line", func() bool { return tp.count(want) == 1 && tp.count("bytes dropped") == 1 })
}

// Past the high-water mark an echo stops reading a peer that does not
// read; once the peer reads, the queue drains, reading resumes and the
// protocol hears it caught up.
func TestHighWaterPausesThenResumes(t *testing.T) {
	e := &watchedEcho{slow: make(chan struct{}, 10), caught: make(chan struct{}, 10)}
	tp := startPortWith(t, context.Background(), func() Protocol { return e }, nil)
	c := tp.dial(t)
	chunk := make([]byte, 64<<10)
	var sent int64
	for {
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Write(chunk)
		sent += int64(n)
		if err != nil {
			break
		}
		if sent > 256<<20 {
			t.Fatal("server kept reading 256 MiB from a client that reads nothing")
		}
	}
	select {
	case <-e.slow:
	case <-time.After(10 * time.Second):
		t.Fatal("PeerSlow not called")
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Read back everything sent (the echo must resume to send the rest),
	// with a writer finishing the last partial chunk meanwhile.
	go c.Write([]byte("end"))
	if _, err := io.CopyN(io.Discard, c, sent+3); err != nil {
		t.Fatalf("reading the echo of %d bytes: %v", sent+3, err)
	}
	select {
	case <-e.caught:
	case <-time.After(10 * time.Second):
		t.Fatal("PeerCaughtUp not called")
	}
}

type watchedEcho struct {
	echo
	slow, caught chan struct{}
}

func (e *watchedEcho) PeerSlow()     { e.slow <- struct{}{} }
func (e *watchedEcho) PeerCaughtUp() { e.caught <- struct{}{} }
