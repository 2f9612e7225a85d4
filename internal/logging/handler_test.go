package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

func TestLineFormat(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(NewTextHandler(&b, nil))
	log.Info("listening on 127.0.0.1:10000", "system", "fastpoetry")
	log.With("system", "echo,3,127.0.0.1:5000").Warn("idle", "after", "30s", "note", "two words")
	log.Error("first\nsecond")
	log.Debug("hidden")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) \[fastpoetry\] listening on 127.0.0.1:10000$`,
		`^\S+ \[echo,3,127.0.0.1:5000\] WARNING: idle after=30s note="two words"$`,
		`^\S+ \[-\] ERROR: first$`,
		"^\tsecond$",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}
}

func TestJournalFormat(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(NewTextHandler(&b, &Options{Journal: true}))
	log.Info("ready", "system", "x")
	log.Error("bad")
	if got, want := b.String(), "<6>[x] ready\n<3>[-] ERROR: bad\n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

// The handler keeps slog's contract (attrs, groups, WithAttrs/WithGroup).
func TestSlogContract(t *testing.T) {
	var b bytes.Buffer
	err := slogtest.TestHandler(NewTextHandler(&b, nil), func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			m := map[string]any{}
			// "<time> [system] msg k=v ..." — slogtest wants time, level, msg and attrs.
			if !strings.HasPrefix(line, "[") {
				ts, after, _ := strings.Cut(line, " ")
				m[slog.TimeKey] = ts
				line = after
			}
			m[slog.LevelKey] = "INFO"
			_, rest, _ := strings.Cut(line, " ")
			fields := strings.Fields(rest)
			var msg []string
			for _, f := range fields {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					msg = append(msg, f)
					continue
				}
				cur := m
				keys := strings.Split(k, ".")
				for _, g := range keys[:len(keys)-1] {
					sub, _ := cur[g].(map[string]any)
					if sub == nil {
						sub = map[string]any{}
						cur[g] = sub
					}
					cur = sub
				}
				cur[keys[len(keys)-1]] = v
			}
			m[slog.MessageKey] = strings.Join(msg, " ")
			out = append(out, m)
		}
		return out
	})
	if err != nil {
		t.Log(b.String())
		t.Error(err)
	}
}

// The timestamp is RFC 3339 with milliseconds. Its second and zone are
// cached; the cache must not leak one record's second, milliseconds or
// zone into another's line.
func TestTimestampCache(t *testing.T) {
	var b bytes.Buffer
	h := NewTextHandler(&b, nil)
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -5*3600)
	base := time.Date(2026, 11, 22, 23, 59, 59, 7_900_000, time.UTC)
	times := []time.Time{
		base,
		base.Add(time.Second), // next second
		base.Add(time.Second).In(east),
		base.Add(1500 * time.Millisecond), // same second, back to UTC
		base.Add(1992 * time.Millisecond), // same second, other milliseconds
		base.Add(-24 * time.Hour).In(west),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC), // before the epoch
	}
	for _, tm := range times {
		r := slog.NewRecord(tm, slog.LevelInfo, "x", 0)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-11-22T23:59:59.007Z [-] x\n" +
		"2026-11-23T00:00:00.007Z [-] x\n" +
		"2026-11-23T05:30:00.007+05:30 [-] x\n" +
		"2026-11-23T00:00:00.507Z [-] x\n" +
		"2026-11-23T00:00:00.999Z [-] x\n" +
		"2026-11-21T18:59:59.007-05:00 [-] x\n" +
		"1969-12-31T23:59:59.999Z [-] x\n"
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
	}
	// Each parses as RFC 3339 back to its record's millisecond.
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		ts, _, _ := strings.Cut(line, " ")
		got, err := time.Parse(time.RFC3339, ts)
		if want := times[i].Truncate(time.Millisecond); err != nil || !got.Equal(want) {
			t.Errorf("%q parses as %v, %v; want %v", ts, got, err, want)
		}
	}
}

// A connection's closing line: ints are written as digits, the system comes
// from the record, the record's own attributes follow the logger's.
func TestRecordSystemAndInts(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(NewTextHandler(&b, nil)).With("system", "port", "svc", "a b")
	log.Info("connection closed", "system", "fastpoetry,7,127.0.0.1:4000", "sent", int64(608), "received", uint64(0), "empty", "")
	re := `^\S+ \[fastpoetry,7,127.0.0.1:4000\] connection closed svc="a b" sent=608 received=0 empty=""\n$`
	if !regexp.MustCompile(re).MatchString(b.String()) {
		t.Errorf("%q does not match %s", b.String(), re)
	}
}

// BenchmarkTextHandler writes a connection's closing line, as a busy
// server does once per connection ("line"), and times the timestamp
// alone: "stamp" as the handler writes it, "format" the baseline of
// time.AppendFormat on every record.
func BenchmarkTextHandler(b *testing.B) {
	log := slog.New(NewTextHandler(io.Discard, nil)).With("system", "fastpoetry,7,127.0.0.1:4000")
	b.Run("line", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			log.Info("connection closed", "sent", int64(7182), "received", int64(0))
		}
	})
	buf := make([]byte, 0, 64)
	b.Run("stamp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendStamp(buf[:0], time.Now())
		}
	})
	b.Run("format", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = time.Now().AppendFormat(buf[:0], stampLayout)
		}
	})
}
