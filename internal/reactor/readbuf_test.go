package reactor

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
)

// The buffer doubles while reads fill it, up to its limit, and halves back
// to its floor once reads stay small.
func TestReadBufferFitsTraffic(t *testing.T) {
	rb := readBuf{floor: 16 << 10, max: 256 << 10, bp: getBuf(16 << 10)}
	for _, want := range []int{32 << 10, 64 << 10, 128 << 10, 256 << 10, 256 << 10} {
		if got := len(rb.fit(len(*rb.bp))); got != want {
			t.Fatalf("after a full read: %d bytes, want %d", got, want)
		}
	}
	for i := 1; i < calmReads; i++ {
		if got := len(rb.fit(100)); got != 256<<10 {
			t.Fatalf("after %d small reads: %d bytes, want no change yet", i, got)
		}
	}
	for _, want := range []int{128 << 10, 64 << 10, 32 << 10, 16 << 10, 16 << 10} {
		if got := len(rb.fit(100)); got != want {
			t.Fatalf("after calm reads: %d bytes, want %d", got, want)
		}
		for range calmReads - 1 {
			rb.fit(100)
		}
	}
	fixed := readBuf{floor: 4 << 10, max: 4 << 10, bp: getBuf(4 << 10)}
	if got := len(fixed.fit(4 << 10)); got != 4<<10 {
		t.Fatalf("a fixed buffer grew to %d", got)
	}
}

// sizer records the largest read it was handed.
type sizer struct {
	echo
	largest *atomic.Int64
}

func (s *sizer) DataReceived(p []byte) {
	if n := int64(len(p)); n > s.largest.Load() {
		s.largest.Store(n)
	}
	s.echo.DataReceived(p)
}

// A bulk stream is read in chunks beyond the initial 16 KiB.
func TestReadBufferGrowsOnBulkStream(t *testing.T) {
	var largest atomic.Int64
	tp := startPortWith(t, context.Background(), func() Protocol { return &sizer{largest: &largest} }, nil)
	c := tp.dial(t)
	const total = 8 << 20
	go func() {
		msg := make([]byte, 64<<10)
		for sent := 0; sent < total; sent += len(msg) {
			if _, err := c.Write(msg); err != nil {
				return
			}
		}
	}()
	if _, err := io.CopyN(io.Discard, c, total); err != nil {
		t.Fatal(err)
	}
	if got := largest.Load(); got <= DefaultReadBufferSize {
		t.Fatalf("largest read %d bytes: the buffer never grew past %d", got, DefaultReadBufferSize)
	}
}
