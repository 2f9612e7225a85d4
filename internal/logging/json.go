package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// JSONHandler writes one JSON object per line, for log shippers:
//
//	{"time":"2026-11-22T19:24:21.123Z","level":"info","msg":"connection closed","system":"fastpoetry,3,127.0.0.1:50312","sent":7182,"received":0}
//
// time (RFC 3339 with milliseconds), level (debug, info, warn, error), msg
// and system come first; the event's own attributes follow as fields.
// Each record is one Write, as with TextHandler; for the journal and
// syslog the line carries a <priority> prefix too.
type JSONHandler struct {
	shared   *jsonShared
	inner    slog.Handler
	system   bool // a system attribute was added with WithAttrs
	priority bool
}

// jsonShared is what every handler derived with WithAttrs shares: the
// buffer slog's JSON handler encodes into, and the destination.
type jsonShared struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

// NewJSONHandler returns a handler writing JSON lines to w.
func NewJSONHandler(w io.Writer, o *Options) *JSONHandler {
	s := &jsonShared{out: w}
	level := slog.Leveler(slog.LevelInfo)
	h := &JSONHandler{shared: s}
	if o != nil {
		if o.Level != nil {
			level = o.Level
		}
		h.priority = o.Journal
	}
	h.inner = slog.NewJSONHandler(&s.buf, &slog.HandlerOptions{Level: level, ReplaceAttr: jsonAttr})
	return h
}

func jsonAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if t, ok := a.Value.Any().(time.Time); ok {
			return slog.String(slog.TimeKey, t.Format(stampLayout))
		}
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			return slog.String(slog.LevelKey, LevelName(l))
		}
	}
	return a
}

// LevelName is the lower-case name --log-level takes for l.
func LevelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// ParseLevel reads a --log-level value.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// Enabled reports whether the level is logged.
func (h *JSONHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *JSONHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.inner = h.inner.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == SystemKey {
			h2.system = true
		}
	}
	return &h2
}

// WithGroup qualifies later attribute keys with name.
func (h *JSONHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.inner = h.inner.WithGroup(name)
	return &h2
}

// Handle encodes the record and writes it as one line.
func (h *JSONHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.system {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			has = a.Key == SystemKey
			return !has
		})
		if !has {
			r = r.Clone()
			r.AddAttrs(slog.String(SystemKey, "-"))
		}
	}
	s := h.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if h.priority {
		s.buf.WriteByte('<')
		s.buf.WriteString(strconv.Itoa(syslogPriority(r.Level)))
		s.buf.WriteByte('>')
	}
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := s.out.Write(s.buf.Bytes())
	if s.buf.Cap() > 64<<10 {
		s.buf = bytes.Buffer{}
	}
	return err
}
