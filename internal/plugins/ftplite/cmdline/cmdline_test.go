package cmdline

import (
	"bytes"
	"strings"
	"testing"
)

func lines(s *Splitter, in string) []string {
	var out []string
	s.Feed([]byte(in), func(l []byte, tooLong bool) bool {
		if tooLong {
			out = append(out, "<too long>")
		} else {
			out = append(out, string(l))
		}
		return true
	})
	return out
}

func TestSplitter(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"crlf", "USER a\r\nPASS b\r\n", []string{"USER a", "PASS b"}},
		{"lf", "NOOP\nNOOP\n", []string{"NOOP", "NOOP"}},
		// ftplib's urgent ABOR loses its LF; lftp's IAC DM loses the DM.
		{"ftplib urgent", "NOOP\r\nABOR\rSTAT\r\n", []string{"NOOP", "ABOR", "STAT"}},
		{"lftp urgent", "\xff\xf4\xffABOR\r\n", []string{"ABOR"}},
		{"oobinline", "\xff\xf4\xff\xf2ABOR\r\n", []string{"ABOR"}},
		{"option", "NO\xff\xfb\x01OP\r\n", []string{"NOOP"}},
		{"escaped iac", "RETR a\xff\xffb\r\n", []string{"RETR a\xffb"}},
		{"empty lines", "\r\n\r\n\nNOOP\r\n", []string{"NOOP"}},
		{"unfinished", "NOOP\r\nQU", []string{"NOOP"}},
	}
	for _, c := range cases {
		if got := lines(New(MaxLine), c.in); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSplitterAcrossReads(t *testing.T) {
	s := New(MaxLine)
	var got []string
	for _, part := range []string{"US", "ER x\r", "\nPA", "SS \xff", "\xf4y\r\n"} {
		got = append(got, lines(s, part)...)
	}
	if strings.Join(got, "|") != "USER x|PASS y" {
		t.Fatalf("got %q", got)
	}
}

func TestSplitterTooLong(t *testing.T) {
	s := New(10)
	got := lines(s, strings.Repeat("A", 5000)+"\r\nNOOP\r\n")
	if strings.Join(got, "|") != "<too long>|NOOP" {
		t.Fatalf("got %q", got)
	}
	if cap(s.buf) > 128 {
		t.Fatalf("buffer grew to %d bytes for a 10-byte limit", cap(s.buf))
	}
}

func TestSplitterStop(t *testing.T) {
	s := New(MaxLine)
	rest := s.Feed([]byte("AUTH TLS\r\n\x16\x03\x01"), func([]byte, bool) bool { return false })
	if !bytes.Equal(rest, []byte("\x16\x03\x01")) {
		t.Fatalf("rest %q", rest)
	}
	s = New(MaxLine)
	s.Feed([]byte("AUTH TLS\r"), func([]byte, bool) bool { return false })
	if rest := s.TrimLF([]byte("\n\x16")); !bytes.Equal(rest, []byte("\x16")) {
		t.Fatalf("rest after split CRLF %q", rest)
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, verb, arg string }{
		{"retr a b.txt", "RETR", "a b.txt"},
		{"PWD", "PWD", ""},
		{"STOR  lead", "STOR", " lead"},
	} {
		v, a, ok := Parse(c.in)
		if !ok || v != c.verb || a != c.arg {
			t.Errorf("Parse(%q) = %q %q %v", c.in, v, a, ok)
		}
	}
	for _, bad := range []string{"", " RETR", "RE1R x", "ABCDEFGHIJ"} {
		if _, _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// FuzzSplitter: whatever arrives, lines are bounded, hold no CR or LF,
// and the verb Parse returns is upper-case letters only.
func FuzzSplitter(f *testing.F) {
	for _, seed := range []string{
		"USER anonymous\r\nPASS x\r\n", "\xff\xf4\xffABOR\r\n", "ABOR\r", "\xff\xfb", "\xff\xff\r\n",
		strings.Repeat("x", 70) + "\n", "RETR ../../etc/passwd\r\n", "EPRT |1|127.0.0.1|2000|\r\n",
	} {
		f.Add([]byte(seed), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		s := New(64)
		check := func(l []byte, tooLong bool) bool {
			if tooLong {
				if l != nil {
					t.Fatal("tooLong with a line")
				}
				return true
			}
			if len(l) == 0 || len(l) > 64 || bytes.ContainsAny(l, "\r\n") {
				t.Fatalf("bad line %q", l)
			}
			if verb, _, ok := Parse(string(l)); ok && strings.Trim(verb, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Fatalf("verb %q", verb)
			}
			return true
		}
		i := min(int(cut), len(in))
		s.Feed(in[:i], check)
		s.Feed(in[i:], check)
	})
}
