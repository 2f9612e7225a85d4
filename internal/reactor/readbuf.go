package reactor

// DefaultMaxReadBufferSize is how far a connection's read buffer grows
// unless a Port sets MaxReadBufferSize. It is held at 64 KiB because one
// read's worth may end up in the output queue when an echo's peer stops
// reading: with the high-water mark that keeps a non-reader's cost to the
// server under 256 KiB.
const DefaultMaxReadBufferSize = 64 << 10

// calmReads is how many reads in a row using under a quarter of the
// buffer make it shrink by half.
const calmReads = 8

// readBuf is a connection's read buffer, sized to its traffic: it doubles
// when a read fills it, up to max, and halves back towards floor after
// calmReads small reads, so a bulk transfer takes few system calls and a
// quiet connection holds little. Buffers come from and return to the
// pools of their size.
type readBuf struct {
	bp         *[]byte // nil while the connection is parked
	floor, max int32
	calm       int32
	cur        int32 // the size of bp, kept while it is back in the pool
}

// size is the buffer to take when the connection reads again.
func (r *readBuf) size() int { return int(max(r.cur, r.floor)) }

// fit resizes the buffer after a read of n bytes and returns it.
func (r *readBuf) fit(n int) []byte {
	size := int32(len(*r.bp))
	switch {
	case int32(n) == size && size < r.max:
		r.calm = 0
		r.resize(min(2*size, r.max))
	case int32(n) < size/4 && size > r.floor:
		if r.calm++; r.calm >= calmReads {
			r.calm = 0
			r.resize(max(size/2, r.floor))
		}
	default:
		r.calm = 0
	}
	return *r.bp
}

func (r *readBuf) resize(size int32) {
	putBuf(r.bp)
	r.bp = getBuf(int(size))
	r.cur = size
}
