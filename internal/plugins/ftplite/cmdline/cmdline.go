// Package cmdline turns an FTP control connection's byte stream into
// command lines: it strips Telnet IAC sequences, accepts CRLF, LF or a bare
// CR as the end of a line, and bounds the length of a line.
//
// The bare CR matters for ABOR: python's ftplib sends "ABOR\r\n" as TCP
// urgent data, and without SO_OOBINLINE the kernel removes the last byte
// (the LF) from the stream. lftp sends IAC IP, then IAC DM as urgent data,
// so the DM byte vanishes and a lone IAC is left in front of "ABOR"; an IAC
// followed by a byte that is not a Telnet command is therefore dropped
// alone and the byte kept.
package cmdline

import "strings"

// MaxLine is the default longest command line, in bytes, without its end.
const MaxLine = 4096

const (
	iac      = 0xFF
	optFirst = 251 // WILL, WONT, DO, DONT take an option byte
	cmdFirst = 240 // SE .. GA are two-byte commands
)

// Splitter accumulates bytes until a line is complete. The zero value is
// not usable; call New.
type Splitter struct {
	buf     []byte
	max     int
	discard bool // dropping the rest of an over-long line
	state   int  // 0 text, 1 after IAC, 2 after IAC WILL/WONT/DO/DONT
	afterCR bool // the last line ended with CR: an LF right after is its end too
}

// New returns a Splitter for lines of at most max bytes.
func New(max int) *Splitter {
	return &Splitter{buf: make([]byte, 0, 128), max: max}
}

// Feed consumes p, calling line for each complete non-empty line. line is
// given the line's bytes (valid only during the call) or, with tooLong set,
// nil for a line that exceeded the limit and was dropped. When line returns
// false Feed stops and returns the bytes of p not yet consumed (the control
// stream is switching to TLS).
func (s *Splitter) Feed(p []byte, line func(l []byte, tooLong bool) bool) (rest []byte) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.state {
		case 1:
			s.state = 0
			switch {
			case b == iac:
				s.add(iac)
				continue
			case b >= optFirst:
				s.state = 2
				continue
			case b >= cmdFirst:
				continue
			}
			// A lone IAC whose partner was taken as urgent data: keep b.
		case 2:
			s.state = 0
			continue
		}
		cr := s.afterCR
		s.afterCR = false
		switch b {
		case iac:
			s.state = 1
		case '\r', '\n':
			if b == '\n' && cr {
				continue
			}
			s.afterCR = b == '\r'
			if s.discard {
				s.discard = false
				if !line(nil, true) {
					return s.TrimLF(p[i+1:])
				}
			} else if len(s.buf) > 0 {
				l := s.buf
				s.buf = s.buf[:0]
				if !line(l, false) {
					return s.TrimLF(p[i+1:])
				}
			}
		default:
			s.add(b)
		}
	}
	return nil
}

// TrimLF drops the LF of a CRLF whose CR ended the last line, for bytes
// that no longer go through Feed (after the switch to TLS).
func (s *Splitter) TrimLF(p []byte) []byte {
	if s.afterCR && len(p) > 0 {
		s.afterCR = false
		if p[0] == '\n' {
			return p[1:]
		}
	}
	return p
}

func (s *Splitter) add(b byte) {
	if s.discard {
		return
	}
	if len(s.buf) >= s.max {
		s.discard = true
		s.buf = s.buf[:0]
		return
	}
	s.buf = append(s.buf, b)
}

// Parse splits a command line into its verb, upper-cased, and its argument
// (everything after the first space, kept as sent: file names may hold
// spaces). ok is false when the verb is not 1 to 8 ASCII letters.
func Parse(line string) (verb, arg string, ok bool) {
	verb, arg, _ = strings.Cut(line, " ")
	if len(verb) == 0 || len(verb) > 8 {
		return "", "", false
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return "", "", false
		}
	}
	return strings.ToUpper(verb), arg, true
}
