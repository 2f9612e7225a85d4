package logging

import (
	"bytes"
	"context"
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
		`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[fastpoetry\] listening on 127.0.0.1:10000$`,
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

// The timestamp is cached per second; the cache must not leak one record's
// second or zone into another's line.
func TestTimestampCache(t *testing.T) {
	var b bytes.Buffer
	h := NewTextHandler(&b, nil)
	east := time.FixedZone("east", 5*3600+30*60)
	base := time.Date(2026, 11, 22, 23, 59, 59, 100, time.UTC)
	for _, tm := range []time.Time{
		base,
		base.Add(time.Second), // next second
		base.Add(time.Second).In(east),
		base.Add(1500 * time.Millisecond), // same second, back to UTC
		base.Add(-24 * time.Hour),
	} {
		r := slog.NewRecord(tm, slog.LevelInfo, "x", 0)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-11-22T23:59:59+0000 [-] x\n" +
		"2026-11-23T00:00:00+0000 [-] x\n" +
		"2026-11-23T05:30:00+0530 [-] x\n" +
		"2026-11-23T00:00:00+0000 [-] x\n" +
		"2026-11-21T23:59:59+0000 [-] x\n"
	if b.String() != want {
		t.Errorf("got\n%swant\n%s", b.String(), want)
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
