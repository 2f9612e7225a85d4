// Package wire is the chat protocol's byte format, shared by the server and
// the Go client: frames of a 12-byte header (three big-endian uint32: total
// length including the header, protocol version, command id) followed by a
// UTF-8 JSON body of length-12 bytes, and the identities carried in bodies.
package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// HeaderLen is the size of a frame header.
const HeaderLen = 12

// DefaultMaxFrame is the largest frame accepted unless a Decoder sets Max.
const DefaultMaxFrame = 64 << 10

// Command ids. Client to server: 1-5; server to client: 101-104 and the
// error reply 199, which this implementation adds (see ErrorBody).
const (
	CmdVerify    = 1
	CmdSingle    = 2
	CmdGroup     = 3
	CmdBroadcast = 4
	CmdHeartbeat = 5

	CmdVerifyResult = 101
	CmdSingleMsg    = 102
	CmdGroupMsg     = 103
	CmdBroadcastMsg = 104
	CmdError        = 199
)

// Error codes carried in a CmdError body. They borrow HTTP's numbers so a
// reader can guess their meaning.
const (
	CodeBadBody       = 400 // body is not JSON of the command's shape
	CodeNotVerified   = 401 // a chat command before a successful verify
	CodeNotYou        = 403 // chat_from names someone other than the sender
	CodeUnknownCmd    = 404 // unknown command id; the stream stays in sync
	CodeReplaced      = 409 // the ID logged in on another connection; this one closes
	CodeUndelivered   = 410 // some recipients were offline; "undelivered" lists them
	CodeShortFrame    = 411 // frame length below 12; the connection closes
	CodeLargeFrame    = 413 // frame length above the maximum; the connection closes
	CodeTooManyErrors = 429 // too many protocol errors in one second; the connection closes
)

// ErrorBody is the body of a CmdError reply.
type ErrorBody struct {
	Code  int    `json:"code"`
	Error string `json:"error"`
	// Undelivered names, as the sender wrote them, the recipients a message
	// did not reach (CodeUndelivered only).
	Undelivered []json.RawMessage `json:"undelivered,omitempty"`
}

// Frame is one decoded frame. Body aliases the decoder's input: it is only
// valid during the callback that receives it.
type Frame struct {
	Version uint32
	Command uint32
	Body    []byte
}

// AppendFrame appends a frame with the given header fields and body to dst.
func AppendFrame(dst []byte, version, command uint32, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(HeaderLen+len(body)))
	dst = binary.BigEndian.AppendUint32(dst, version)
	dst = binary.BigEndian.AppendUint32(dst, command)
	return append(dst, body...)
}

// LengthError is a frame header whose length is below HeaderLen or above the
// maximum. The stream cannot be resynchronised after it.
type LengthError struct {
	Length uint32
	Max    int
	// Version is the header's version field, so the error reply can carry
	// it like any other reply.
	Version uint32
}

func (e *LengthError) Error() string {
	if e.Length < HeaderLen {
		return fmt.Sprintf("frame length %d is below the header size %d", e.Length, HeaderLen)
	}
	return fmt.Sprintf("frame length %d is above the maximum %d", e.Length, e.Max)
}

// TooShort reports whether the length was below the header size.
func (e *LengthError) TooShort() bool { return e.Length < HeaderLen }

// Decoder splits a byte stream into frames. Its zero value accepts frames up
// to DefaultMaxFrame. It copies only the bytes of a frame that spans reads,
// into a buffer allocated once at the frame's declared length (grown by
// doubling, a stalled frame would hold up to twice its size), and holds no
// buffer between frames.
type Decoder struct {
	// Max is the largest frame length accepted; 0 means DefaultMaxFrame.
	Max int

	pending []byte // start of a frame that spans reads
}

// keepCap is the largest pending buffer kept between frames; a larger one is
// released so an idle connection that once received a big frame costs little.
const keepCap = 512

// Feed consumes p, calling fn for every complete frame in order. It keeps an
// incomplete trailing frame for the next call. fn returning false stops
// decoding and discards the rest of p. A *LengthError means the stream is
// broken; the Decoder must not be used after it.
func (d *Decoder) Feed(p []byte, fn func(Frame) bool) error {
	max := d.Max
	if max <= 0 {
		max = DefaultMaxFrame
	}
	// Complete a frame begun in an earlier read, copying no more of p than
	// that frame needs.
	for len(d.pending) > 0 && len(p) > 0 {
		want := HeaderLen
		if len(d.pending) >= HeaderLen {
			want = int(binary.BigEndian.Uint32(d.pending))
		}
		n := min(want-len(d.pending), len(p))
		d.pending = append(d.pending, p[:n]...)
		p = p[n:]
		if len(d.pending) < HeaderLen {
			return nil
		}
		size, err := frameLen(d.pending, max)
		if err != nil {
			return err
		}
		if len(d.pending) < size {
			d.reserve(size)
			continue
		}
		ok := fn(parse(d.pending))
		if cap(d.pending) > keepCap {
			d.pending = nil
		} else {
			d.pending = d.pending[:0]
		}
		if !ok {
			return nil
		}
	}
	if len(d.pending) > 0 {
		return nil
	}
	for len(p) >= HeaderLen {
		size, err := frameLen(p, max)
		if err != nil {
			return err
		}
		if len(p) < size {
			break
		}
		if !fn(parse(p[:size])) {
			return nil
		}
		p = p[size:]
	}
	if len(p) > 0 {
		if len(p) >= HeaderLen {
			// frameLen accepted this header in the loop above.
			d.reserve(int(binary.BigEndian.Uint32(p)))
		}
		d.pending = append(d.pending[:0], p...)
	}
	return nil
}

// reserve makes the pending buffer's capacity exactly size, the length of
// the frame it holds the start of, unless it is already large enough.
func (d *Decoder) reserve(size int) {
	if cap(d.pending) >= size {
		return
	}
	b := make([]byte, len(d.pending), size)
	copy(b, d.pending)
	d.pending = b
}

// Buffered returns how many bytes of an incomplete frame are held.
func (d *Decoder) Buffered() int { return len(d.pending) }

func frameLen(h []byte, max int) (int, error) {
	n := binary.BigEndian.Uint32(h)
	if n < HeaderLen || uint64(n) > uint64(max) {
		return 0, &LengthError{Length: n, Max: max, Version: binary.BigEndian.Uint32(h[4:])}
	}
	return int(n), nil
}

func parse(b []byte) Frame {
	return Frame{
		Version: binary.BigEndian.Uint32(b[4:]),
		Command: binary.BigEndian.Uint32(b[8:]),
		Body:    b[HeaderLen:],
	}
}

// MaxIDLen bounds an identity's length in bytes.
const MaxIDLen = 128

// ID is a user identity: a JSON string or integer (a phone number). The
// string "123" and the number 123 are the same user. Raw keeps the form the
// client wrote, which the server echoes back.
type ID struct {
	Key string
	Raw json.RawMessage
}

// ParseID validates an identity value.
func ParseID(raw json.RawMessage) (ID, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ID{}, errors.New("missing")
	}
	var key string
	switch c := raw[0]; {
	case c == '"':
		if k, ok := plainString(raw); ok {
			key = k
		} else if err := json.Unmarshal(raw, &key); err != nil {
			return ID{}, err
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
			return ID{}, fmt.Errorf("%s is not an integer", raw)
		}
		key = string(raw)
	default:
		return ID{}, fmt.Errorf("%.40s is not a string or an integer", raw)
	}
	if key == "" || len(key) > MaxIDLen {
		return ID{}, fmt.Errorf("must be 1 to %d bytes long", MaxIDLen)
	}
	return ID{Key: key, Raw: raw}, nil
}

// plainString returns the value of a JSON string with nothing to unescape
// (the common ID), without the decoder's reflection: every message names
// two IDs. It reports false for anything else, which the decoder handles.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, b := range in {
		if b == '"' || b == '\\' || b < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false // the decoder replaces what is not UTF-8
	}
	return string(in), true
}

// Verify is the body of CmdVerify. Password is this implementation's
// addition, checked only by a server given a users file.
type Verify struct {
	PhoneNumber json.RawMessage `json:"phone_number"`
	Password    *string         `json:"password,omitempty"`
}

// Chat is the body of CmdSingle, CmdGroup and CmdBroadcast (which has no
// chat_to). chat_to is one ID for CmdSingle and a list for CmdGroup.
type Chat struct {
	From    json.RawMessage `json:"chat_from"`
	To      json.RawMessage `json:"chat_to,omitempty"`
	Content json.RawMessage `json:"chat_content"`
}

// Delivered is the body of CmdSingleMsg, CmdGroupMsg and CmdBroadcastMsg.
type Delivered struct {
	From    json.RawMessage `json:"chat_from"`
	Content json.RawMessage `json:"chat_content"`
}

// AppendDelivered appends the JSON body of a relayed message. from and
// content are JSON values already validated, so they are copied verbatim.
func AppendDelivered(dst []byte, from, content json.RawMessage) []byte {
	dst = append(dst, `{"chat_from":`...)
	dst = append(dst, from...)
	dst = append(dst, `,"chat_content":`...)
	dst = append(dst, content...)
	return append(dst, '}')
}
