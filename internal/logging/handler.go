// Package logging provides the slog handlers and sinks of the runner:
// twistd-style text lines to stdout or a rotating file.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SystemKey is the attribute naming which service or connection a line is
// about; it is shown in brackets, as twistd does.
const SystemKey = "system"

// TextHandler writes one line per record:
//
//	2026-11-22T19:24:21.042Z [fastpoetry,3,127.0.0.1:50312] connection closed sent=7182 received=0
//
// The timestamp is RFC 3339 with milliseconds, in the local zone (Z for
// UTC, else its offset: 2026-11-22T14:24:21.042-05:00), so lines can be
// ordered against another system's.
//
// Continuation lines of a multi-line message start with a tab. Each record
// is written with a single Write, so a rotating writer never splits it.
type TextHandler struct {
	out      *lockedWriter
	level    slog.Leveler
	noTime   bool // the journal adds its own timestamp
	priority bool // prefix <N> syslog priorities for the journal
	system   string
	prefix   string // preformatted attributes from WithAttrs
	group    string
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Options configure a TextHandler.
type Options struct {
	Level slog.Leveler
	// Journal drops the timestamp and prefixes <priority> (sd-daemon(3)),
	// for stdout/stderr connected to the systemd journal.
	Journal bool
}

// NewTextHandler returns a handler writing twistd-style lines to w.
func NewTextHandler(w io.Writer, o *Options) *TextHandler {
	h := &TextHandler{out: &lockedWriter{w: w}, level: slog.LevelInfo, system: "-"}
	if o != nil {
		if o.Level != nil {
			h.level = o.Level
		}
		h.noTime, h.priority = o.Journal, o.Journal
	}
	return h
}

// Enabled reports whether the level is logged.
func (h *TextHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs returns a handler that adds attrs to every record; a "system"
// attribute replaces the bracketed tag.
func (h *TextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	b := []byte(h.prefix)
	for _, a := range attrs {
		if a.Key == SystemKey && h.group == "" {
			h2.system = a.Value.String()
			continue
		}
		b = appendAttr(b, h.group, a)
	}
	h2.prefix = string(b)
	return &h2
}

// WithGroup qualifies later attribute keys with name.
func (h *TextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

// stamp is the second of the last formatted timestamp. Lines carry
// milliseconds (RFC 3339, the layout of the JSON lines), but a busy server
// formats the date, time and zone once a second and only the milliseconds
// per line: within one second of one location the zone offset cannot
// change, so the parts around the milliseconds are the same.
type stamp struct {
	sec  int64
	loc  *time.Location
	head string // "2006-01-02T15:04:05."
	tail string // "Z07:00 "
}

var lastStamp atomic.Pointer[stamp]

// stampLayout is the timestamp of a line, the same in text and JSON.
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

func appendStamp(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	s := lastStamp.Load()
	if s == nil || s.sec != sec || s.loc != loc {
		s = &stamp{sec: sec, loc: loc, head: t.Format("2006-01-02T15:04:05."), tail: t.Format("Z07:00 ")}
		lastStamp.Store(s)
	}
	ms := t.Nanosecond() / 1e6
	b = append(b, s.head...)
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, s.tail...)
}

// bufPool recycles line buffers: a busy server logs a line per connection.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Handle formats and writes the record.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if h.priority {
		buf = append(buf, '<')
		buf = strconv.AppendInt(buf, int64(syslogPriority(r.Level)), 10)
		buf = append(buf, '>')
	}
	if !h.noTime && !r.Time.IsZero() {
		buf = appendStamp(buf, r.Time)
	}
	system := h.system
	if h.group == "" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == SystemKey {
				system = a.Value.String()
			}
			return true
		})
	}
	buf = append(buf, '[')
	buf = append(buf, system...)
	buf = append(buf, "] "...)
	switch {
	case r.Level >= slog.LevelError:
		buf = append(buf, "ERROR: "...)
	case r.Level >= slog.LevelWarn:
		buf = append(buf, "WARNING: "...)
	case r.Level < slog.LevelInfo:
		buf = append(buf, "debug: "...)
	}
	msg := strings.TrimRight(r.Message, "\n")
	for {
		i := strings.IndexByte(msg, '\n')
		if i < 0 {
			break
		}
		buf = append(buf, msg[:i+1]...)
		buf = append(buf, '\t')
		msg = msg[i+1:]
	}
	buf = append(buf, msg...)
	buf = append(buf, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != SystemKey || h.group != "" {
			buf = appendAttr(buf, h.group, a)
		}
		return true
	})
	buf = append(buf, '\n')
	h.out.mu.Lock()
	_, err := h.out.w.Write(buf)
	h.out.mu.Unlock()
	if cap(buf) <= 64<<10 {
		*bp = buf
		bufPool.Put(bp)
	}
	return err
}

func appendAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, g, ga)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, group...)
	b = append(b, a.Key...)
	b = append(b, '=')
	switch a.Value.Kind() {
	case slog.KindInt64:
		return strconv.AppendInt(b, a.Value.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, a.Value.Uint64(), 10)
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// syslogPriority maps slog levels to syslog severities.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}
