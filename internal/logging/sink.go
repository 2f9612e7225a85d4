package logging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// MaxSizeMBLimit is the largest Config.MaxSizeMB accepted: 1 TiB. lumberjack
// multiplies the size by 2^20 in an int64, so from 2^43 MiB on the product
// overflows and every write fails; no real log needs more than this.
const MaxSizeMBLimit = 1 << 20

// Config says where log lines go.
type Config struct {
	// File is the log file path; "-" or "" means stdout.
	File string
	// MaxSizeMB is the size at which the file is rotated (lumberjack counts
	// whole MiB; twistd rotates at 1,000,000 bytes); 0 never rotates by
	// size, for logrotate to do it. At most MaxSizeMBLimit.
	MaxSizeMB int
	// MaxFiles is how many rotated files are kept; 0 keeps all.
	MaxFiles int
	// Syslog sends lines to the local syslog instead, tagged Prefix.
	Syslog bool
	Prefix string
}

// Sink is an open log destination. It writes each line whole or not at
// all: a line that could not be written is counted, a line cut short (a
// disk that filled during the write) is ended before the next, and the
// first line written after a failure says how many were lost and why.
// While writing fails, the first failure is also reported elsewhere (see
// Write).
type Sink struct {
	w      io.Writer
	file   logFile   // nil unless logging to a file
	closer io.Closer // syslog connection
	tag    string    // syslog tag of the failure report

	// Where the first failure is reported besides; set by Open, replaced
	// by tests.
	stderr                *os.File
	syslogNet, syslogAddr string // "" and "": the local /dev/log; syslogNet "-": none

	mu      sync.Mutex
	lost    uint64 // lines lost since the last successful write
	total   uint64 // lines lost since Open
	cut     bool   // the last write stopped inside a line
	why     error  // the first error since the last successful write
	failing error  // the error of the last write, nil once one succeeds
}

// logFile is the file behind a Sink: lumberjack's rotating Logger, or a
// plain file when rotation is left to logrotate.
type logFile interface {
	io.WriteCloser
	name() string
	// rebase closes the file and makes later writes open path.
	rebase(path string) error
}

// Open opens the destination. For a file it checks at once that the file
// can be opened, so a bad path is reported at start-up, not lost later; a
// new file gets mode 0640 less the umask.
func Open(c Config, stdout io.Writer) (*Sink, error) {
	if c.Syslog {
		return openSyslog("", "", c.Prefix)
	}
	if c.MaxSizeMB < 0 || c.MaxSizeMB > MaxSizeMBLimit {
		return nil, fmt.Errorf("log file size limit %d MiB: must be from 0 (no rotation) to %d (1 TiB)", c.MaxSizeMB, MaxSizeMBLimit)
	}
	if c.File == "" || c.File == "-" {
		return newSink(stdout, nil, c.Prefix), nil
	}
	path, err := filepath.Abs(c.File)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", c.File, err)
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, pathErr(err))
	}
	if c.MaxSizeMB == 0 {
		pf := &plainFile{path: path, f: f}
		return newSink(pf, pf, c.Prefix), nil
	}
	f.Close()
	lj := rotating{&lumberjack.Logger{Filename: path, MaxSize: c.MaxSizeMB, MaxBackups: c.MaxFiles}}
	return newSink(lj, lj, c.Prefix), nil
}

func newSink(w io.Writer, f logFile, tag string) *Sink {
	if tag == "" {
		tag = "twistd"
	}
	return &Sink{w: w, file: f, tag: tag, stderr: os.Stderr}
}

// openAppend opens the log file by path for appending.
func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Write writes p, one or more whole lines (a TextHandler writes one record
// per call). When it fails, the lines are counted as lost and the error
// returned; the first failure after a success is also reported on stderr,
// unless stderr is this log or /dev/null, and to the local syslog when
// there is one and this is not it. The first write that works again is
// preceded by a line saying how many lines were lost and why.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost > 0 || s.cut {
		notice := s.lossNotice(p)
		n, err := s.w.Write(notice)
		if err != nil {
			s.fail(p, n > 0, err)
			return 0, err
		}
		s.lost, s.cut, s.why = 0, false, nil
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.fail(p, n > 0, err)
		return n, err
	}
	s.failing = nil
	return n, nil
}

// fail counts the lines of p as lost; cut says the destination took the
// start of what was written, which the next write must end first.
func (s *Sink) fail(p []byte, cut bool, err error) {
	n := uint64(max(bytes.Count(p, []byte{'\n'}), 1))
	s.lost += n
	s.total += n
	s.cut = s.cut || cut
	s.failing = err
	if s.why == nil {
		s.why = err
		s.reportFailure(err)
	}
}

// lossNotice is the line that goes before next after lines were lost, in
// next's format (a journal or syslog line starts with its <priority>), and
// preceded by a newline that ends a line cut short.
func (s *Sink) lossNotice(next []byte) []byte {
	var b bytes.Buffer
	if s.cut {
		b.WriteByte('\n')
	}
	lines := "lines"
	if s.lost == 1 {
		lines = "line"
	}
	msg := fmt.Sprintf("log: %s %s lost: %v", thousands(s.lost), lines, pathErr(s.why))
	if s.cut {
		msg += " (the line above was cut short)"
	}
	h := NewTextHandler(&b, &Options{Journal: len(next) > 0 && next[0] == '<'})
	h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelWarn, msg, 0))
	return b.Bytes()
}

// reportFailure says once per failing spell, outside the log, that the log
// cannot be written.
func (s *Sink) reportFailure(err error) {
	msg := fmt.Sprintf("log: cannot write to %s: %v; lost lines are counted and reported there once writing works again", s.describe(), pathErr(err))
	if s.stderr != nil && !s.isLog(s.stderr) {
		var b bytes.Buffer
		h := NewTextHandler(&b, &Options{Journal: IsJournal(s.stderr)})
		h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelError, msg, 0))
		s.stderr.Write(b.Bytes())
	}
	if s.closer != nil || s.syslogNet == "-" {
		return // syslog is the log itself, or there is none to tell
	}
	if w, err := syslog.Dial(s.syslogNet, s.syslogAddr, syslog.LOG_ERR|syslog.LOG_DAEMON, s.tag); err == nil {
		w.Err(msg)
		w.Close()
	}
}

func (s *Sink) describe() string {
	switch {
	case s.file != nil:
		return s.file.name()
	case s.closer != nil:
		return "syslog"
	}
	return "stdout"
}

// isLog reports whether f is this log itself or /dev/null, where a report
// about the log is no use.
func (s *Sink) isLog(f *os.File) bool {
	var st, dest syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil {
		return true
	}
	var err error = syscall.ENOENT
	if s.file != nil {
		err = syscall.Stat(s.file.name(), &dest)
	} else if out, ok := s.w.(*os.File); ok {
		err = syscall.Fstat(int(out.Fd()), &dest)
	}
	if err == nil && dest.Dev == st.Dev && dest.Ino == st.Ino {
		return true
	}
	var null syscall.Stat_t
	return st.Mode&syscall.S_IFMT == syscall.S_IFCHR && syscall.Stat(os.DevNull, &null) == nil && null.Rdev == st.Rdev
}

// Failing returns the error of the last write when no write has worked
// since, or nil. A start-up whose first lines could not be written is a
// start-up without a log.
func (s *Sink) Failing() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing == nil {
		return nil
	}
	return fmt.Errorf("cannot write to %s: %w", s.describe(), pathErr(s.failing))
}

// Lost returns how many lines could not be written since Open.
func (s *Sink) Lost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// thousands writes n with commas between groups of three digits.
func thousands(n uint64) string {
	d := strconv.FormatUint(n, 10)
	var b []byte
	for i := range len(d) {
		if i > 0 && (len(d)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, d[i])
	}
	return string(b)
}

// Path is the log file's path, or "" when not logging to a file.
func (s *Sink) Path() string {
	if s.file == nil {
		return ""
	}
	return s.file.name()
}

// Reopen makes the next line go to a file opened afresh by name: after
// logrotate (or an operator) moved the file away, lines land in a new file
// at the path instead of the moved one. Closing does exactly this, because
// the next Write reopens a closed file by name (appending if a file is
// there, creating one if not). It reports whether there was a file to
// reopen.
func (s *Sink) Reopen() (bool, error) {
	if s.file == nil {
		return false, nil
	}
	return true, s.file.Close()
}

// Chown gives the log file to uid/gid (-1 keeps one unchanged) before the
// daemon drops privileges. lumberjack then keeps that owner when it
// rotates, which an unprivileged process may do only for its own files.
func (s *Sink) Chown(uid, gid int) error {
	if s.file == nil {
		return nil
	}
	if err := os.Chown(s.file.name(), uid, gid); err != nil {
		return fmt.Errorf("log file %s: %w", s.file.name(), pathErr(err))
	}
	return nil
}

// Rebase changes the path the file is reopened and rotated by, after a
// chroot moved the old absolute path. Call it before other goroutines log.
func (s *Sink) Rebase(path string) error {
	if s.file == nil {
		return nil
	}
	return s.file.rebase(path)
}

// OpenAppend opens the current log file for appending, for the daemon's
// own stderr, so a crash trace ends up in the log.
func (s *Sink) OpenAppend() (*os.File, error) {
	if s.file == nil {
		return nil, errors.New("not logging to a file")
	}
	return openAppend(s.file.name())
}

// Close closes the file or syslog connection, if any.
func (s *Sink) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}

// rotating is lumberjack's Logger as a logFile.
type rotating struct{ *lumberjack.Logger }

func (r rotating) name() string { return r.Filename }

func (r rotating) rebase(path string) error {
	err := r.Close()
	r.Filename = path
	return err
}

// plainFile is an append-only file that is never rotated, reopened by
// name on the first write after Close.
type plainFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func (p *plainFile) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		f, err := openAppend(p.path)
		if err != nil {
			return 0, err
		}
		p.f = f
	}
	return p.f.Write(b)
}

func (p *plainFile) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}

func (p *plainFile) name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.path
}

func (p *plainFile) rebase(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if p.f != nil {
		err = p.f.Close()
		p.f = nil
	}
	p.path = path
	return err
}

// pathErr drops the *PathError wrapper whose path the caller already shows.
func pathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
