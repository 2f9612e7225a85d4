package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// collect feeds the stream in the given chunk sizes (cycled) and returns a
// copy of every frame and the first error.
func collect(t testing.TB, d *Decoder, stream []byte, chunks []int) ([]Frame, error) {
	t.Helper()
	var got []Frame
	keep := func(f Frame) bool {
		f.Body = bytes.Clone(f.Body)
		got = append(got, f)
		return true
	}
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(chunks) > 0 {
			n = min(max(chunks[i%len(chunks)], 1), len(stream))
		}
		if err := d.Feed(stream[:n], keep); err != nil {
			return got, err
		}
		stream = stream[n:]
	}
	return got, nil
}

func sample() ([]byte, []Frame) {
	want := []Frame{
		{Version: 1, Command: CmdVerify, Body: []byte(`{"phone_number":"42"}`)},
		{Version: 7, Command: CmdHeartbeat, Body: []byte{}},
		{Version: 1, Command: CmdSingle, Body: bytes.Repeat([]byte("x"), 3000)},
		{Version: 0xffffffff, Command: 12345, Body: []byte(`{}`)},
	}
	var stream []byte
	for _, f := range want {
		stream = AppendFrame(stream, f.Version, f.Command, f.Body)
	}
	return stream, want
}

func TestDecoderSplitsAndMerges(t *testing.T) {
	stream, want := sample()
	for _, chunks := range [][]int{nil, {1}, {2}, {11}, {12}, {13}, {5, 100, 1, 7000}, {4096}} {
		var d Decoder
		got, err := collect(t, &d, stream, chunks)
		if err != nil {
			t.Fatalf("chunks %v: %v", chunks, err)
		}
		if len(got) != len(want) {
			t.Fatalf("chunks %v: %d frames, want %d", chunks, len(got), len(want))
		}
		for i := range want {
			if got[i].Version != want[i].Version || got[i].Command != want[i].Command || !bytes.Equal(got[i].Body, want[i].Body) {
				t.Fatalf("chunks %v: frame %d = %+v, want %+v", chunks, i, got[i], want[i])
			}
		}
		if d.Buffered() != 0 {
			t.Fatalf("chunks %v: %d bytes left buffered", chunks, d.Buffered())
		}
	}
}

func TestDecoderKeepsPartialFrame(t *testing.T) {
	stream, _ := sample()
	var d Decoder
	got, err := collect(t, &d, stream[:len(stream)-3], nil)
	if err != nil || len(got) != 3 || d.Buffered() != HeaderLen+2-3 {
		t.Fatalf("got %d frames, err %v, buffered %d", len(got), err, d.Buffered())
	}
	got, err = collect(t, &d, stream[len(stream)-3:], nil)
	if err != nil || len(got) != 1 || got[0].Command != 12345 {
		t.Fatalf("after the rest: %+v, %v", got, err)
	}
}

func TestDecoderRejectsLengths(t *testing.T) {
	hdr := func(n uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		return append(b, 0, 0, 0, 7, 0, 0, 0, 5)
	}
	good := AppendFrame(nil, 1, CmdHeartbeat, nil)
	for _, tc := range []struct {
		length uint32
		short  bool
	}{{0, true}, {11, true}, {101, false}, {0xffffffff, false}} {
		for _, chunks := range [][]int{nil, {1}, {3}} {
			d := Decoder{Max: 100}
			stream := append(bytes.Clone(good), hdr(tc.length)...)
			stream = append(stream, good...)
			got, err := collect(t, &d, stream, chunks)
			var le *LengthError
			if !errors.As(err, &le) || le.Length != tc.length || le.TooShort() != tc.short || le.Version != 7 {
				t.Fatalf("length %d chunks %v: err %v", tc.length, chunks, err)
			}
			if len(got) != 1 {
				t.Fatalf("length %d chunks %v: %d frames before the error, want 1", tc.length, chunks, len(got))
			}
		}
	}
	// The maximum itself is accepted.
	d := Decoder{Max: 100}
	got, err := collect(t, &d, AppendFrame(nil, 1, 2, make([]byte, 88)), []int{1})
	if err != nil || len(got) != 1 {
		t.Fatalf("frame of exactly Max: %v, %d frames", err, len(got))
	}
}

func TestDecoderStop(t *testing.T) {
	stream, _ := sample()
	var d Decoder
	n := 0
	if err := d.Feed(stream, func(Frame) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("stop after the first frame: n=%d err=%v", n, err)
	}
}

func TestDecoderReleasesLargeBuffer(t *testing.T) {
	f := AppendFrame(nil, 1, 2, make([]byte, 5000))
	var d Decoder
	if _, err := collect(t, &d, f, []int{100}); err != nil {
		t.Fatal(err)
	}
	if d.pending != nil {
		t.Fatalf("pending buffer of cap %d kept after a large frame", cap(d.pending))
	}
}

// TestDecoderAllocatesOnce feeds a large frame in small reads: the buffer
// holding it must be allocated at the frame's declared length, not grown by
// doubling (which held 1.8 times a stalled frame).
func TestDecoderAllocatesOnce(t *testing.T) {
	const size = 65536
	f := AppendFrame(nil, 1, 2, make([]byte, size-HeaderLen))
	for _, first := range []int{5, HeaderLen, 2048} {
		var d Decoder
		n := 0
		d.Feed(f[:first], func(Frame) bool { n++; return true })
		for off := first; off < 65000; off += 2048 {
			d.Feed(f[off:min(off+2048, 65000)], func(Frame) bool { n++; return true })
			if cap(d.pending) != size {
				t.Fatalf("first read %d: after %d bytes the buffer has cap %d, want %d", first, min(off+2048, 65000), cap(d.pending), size)
			}
		}
		if n != 0 || d.Buffered() != 65000 {
			t.Fatalf("first read %d: %d frames, %d buffered", first, n, d.Buffered())
		}
		d.Feed(f[65000:], func(Frame) bool { n++; return true })
		if n != 1 || d.Buffered() != 0 {
			t.Fatalf("first read %d: %d frames at the end, %d buffered", first, n, d.Buffered())
		}
	}
}

func TestParseID(t *testing.T) {
	for raw, key := range map[string]string{`"13800138000"`: "13800138000", `13800138000`: "13800138000", `"alice"`: "alice", ` -7 `: "-7"} {
		id, err := ParseID([]byte(raw))
		if err != nil || id.Key != key {
			t.Errorf("ParseID(%s) = %+v, %v; want key %q", raw, id, err, key)
		}
	}
	for _, raw := range []string{``, `""`, `null`, `1.5`, `1e3`, `[1]`, `{"a":1}`, `true`, `"` + string(bytes.Repeat([]byte("a"), MaxIDLen+1)) + `"`} {
		if id, err := ParseID([]byte(raw)); err == nil {
			t.Errorf("ParseID(%s) = %+v, want an error", raw, id)
		}
	}
}

func BenchmarkDecoderSmallFrames(b *testing.B) {
	var stream []byte
	for range 64 {
		stream = AppendFrame(stream, 1, CmdSingle, []byte(`{"chat_from":"1","chat_to":"2","chat_content":"hello there"}`))
	}
	b.SetBytes(int64(len(stream)))
	var d Decoder
	n := 0
	count := func(Frame) bool { n++; return true }
	for b.Loop() {
		// 1000-byte reads, so frames straddle reads as they do on a socket.
		for p := stream; len(p) > 0; {
			k := min(1000, len(p))
			if err := d.Feed(p[:k], count); err != nil {
				b.Fatal(err)
			}
			p = p[k:]
		}
	}
}
