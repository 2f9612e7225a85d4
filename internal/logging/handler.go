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
)

// SystemKey is the attribute naming which service or connection a line is
// about; it is shown in brackets, as twistd does.
const SystemKey = "system"

// TextHandler writes one line per record:
//
//	2026-11-22T19:24:21+0000 [fastpoetry,3,127.0.0.1:50312] connection closed sent=7182 received=0
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
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		if a.Key == SystemKey && h.group == "" {
			h2.system = a.Value.String()
			continue
		}
		appendAttr(&b, h.group, a)
	}
	h2.prefix = b.String()
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

// Handle formats and writes the record.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 256)
	if h.priority {
		buf = append(buf, '<')
		buf = strconv.AppendInt(buf, int64(syslogPriority(r.Level)), 10)
		buf = append(buf, '>')
	}
	if !h.noTime && !r.Time.IsZero() {
		buf = r.Time.AppendFormat(buf, "2006-01-02T15:04:05-0700")
		buf = append(buf, ' ')
	}
	system := h.system
	var attrs strings.Builder
	attrs.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == SystemKey && h.group == "" {
			system = a.Value.String()
			return true
		}
		appendAttr(&attrs, h.group, a)
		return true
	})
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
	buf = append(buf, strings.ReplaceAll(strings.TrimRight(r.Message, "\n"), "\n", "\n\t")...)
	buf = append(buf, attrs.String()...)
	buf = append(buf, '\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(buf)
	return err
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
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
