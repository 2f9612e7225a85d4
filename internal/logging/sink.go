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
)

// Config says where log lines go.
type Config struct {
	// File is the log file path; "-" or "" means stdout.
	File string
	// MaxSizeMB is the size at which the file is rotated (lumberjack counts
	// whole MiB; twistd rotates at 1,000,000 bytes); 0 means never (for
	// logrotate).
	MaxSizeMB int
	// MaxFiles is how many rotated files are kept; 0 keeps all.
	MaxFiles int
	// Syslog sends lines to the local syslog instead, tagged Prefix.
	Syslog bool
	Prefix string
	// Owner is the user the daemon will run as (-1: the current one): a
	// log file it owns is accepted, any other user's refused.
	Owner int
}

// Sink is an open log destination.
type Sink struct {
	io.Writer
	file   *logFile  // nil unless logging to a file
	closer io.Closer // syslog connection
}

// open opens the destination. For a file it checks at once that the file
// can be opened, so a bad path is reported at start-up, not lost later; a
// new file gets mode 0640 less the umask.
func open(c Config, stdout io.Writer) (*Sink, error) {
	if c.Syslog {
		return openSyslog("", "", c.Prefix)
	}
	if c.File == "" || c.File == "-" {
		return &Sink{Writer: stdout}, nil
	}
	path, err := filepath.Abs(c.File)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", c.File, err)
	}
	f, err := openLogFile(path, c.MaxSizeMB, c.MaxFiles, c.Owner)
	if err != nil {
		return nil, err
	}
	return &Sink{Writer: f, file: f}, nil
}

// Path is the log file's path, or "" when not logging to a file.
func (s *Sink) Path() string {
	if s.file == nil {
		return ""
	}
	s.file.mu.Lock()
	defer s.file.mu.Unlock()
	return s.file.path
}

// Reopen makes the next line go to a file opened afresh by name: after
// logrotate (or an operator) moved the file away, lines land in a new file
// at the path instead of the moved one. It reports whether there was a
// file to reopen.
func (s *Sink) Reopen() (bool, error) {
	if s.file == nil {
		return false, nil
	}
	return true, s.file.reopen()
}

// StartRotation lets the log rotate by size; call it once the process runs
// as the user it keeps (see logFile).
func (s *Sink) StartRotation() error {
	if s.file == nil {
		return nil
	}
	return s.file.startRotation()
}

// Chown gives the log file to uid/gid (-1 keeps one unchanged) before the
// daemon drops privileges. lumberjack then keeps that owner when it
// rotates, which an unprivileged process may do only for its own files.
func (s *Sink) Chown(uid, gid int) error {
	if s.file == nil {
		return nil
	}
	return s.file.chown(uid, gid)
}

// Rebase changes the path the file is reopened and rotated by, after a
// chroot moved the old absolute path.
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
	return s.file.openAppend()
}

// Close closes the file or syslog connection, if any.
func (s *Sink) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	if s.file == nil {
		return nil
	}
	return s.file.close()
}

// pathErr drops the *PathError wrapper whose path the caller already shows.
func pathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Open opens the destination (see open) and guards its lines: each is
// written whole or not at all. A line that could not be written is
// counted, a line cut short (a disk that filled during the write) is ended
// before the next, and the first line written after a failure says how
// many were lost and why. The first failure of a spell is also reported
// outside the log: on stderr unless stderr is the log or /dev/null, and to
// the local syslog unless that is the log. Failing tells the runner that
// the log cannot be written at all; until a first line was written, that
// is the only report.
func Open(c Config, stdout io.Writer) (*Sink, error) {
	s, err := open(c, stdout)
	if err != nil {
		return nil, err
	}
	tag := c.Prefix
	if tag == "" {
		tag = "twistd"
	}
	s.Writer = &lineGuard{sink: s, w: s.Writer, tag: tag, stderr: os.Stderr}
	return s, nil
}

// Failing returns the error of the last write when no write has worked
// since, or nil: a start-up whose first lines could not be written is a
// start-up without a log.
func (s *Sink) Failing() error {
	g, ok := s.Writer.(*lineGuard)
	if !ok {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failing == nil {
		return nil
	}
	return fmt.Errorf("%s: cannot write: %w", s.describe(), pathErr(g.failing))
}

// Lost returns how many lines could not be written since Open.
func (s *Sink) Lost() uint64 {
	g, ok := s.Writer.(*lineGuard)
	if !ok {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// describe names the destination in a report about it.
func (s *Sink) describe() string {
	switch {
	case s.Path() != "":
		return "log file " + s.Path()
	case s.closer != nil:
		return "syslog"
	}
	return "stdout"
}

// lineGuard is the writer of an opened Sink: see Open.
type lineGuard struct {
	sink *Sink
	w    io.Writer
	tag  string // syslog tag of the failure report

	// Where the first failure is reported besides: stderr (nil: nowhere)
	// and syslog (syslogNet "" with syslogAddr "": the local /dev/log;
	// syslogNet "-": nowhere). Tests replace them.
	stderr                *os.File
	syslogNet, syslogAddr string

	mu      sync.Mutex
	lost    uint64 // lines lost since the last successful write
	total   uint64 // lines lost since Open
	cut     bool   // the last write stopped inside a line
	worked  bool   // a write has succeeded since Open
	why     error  // the first error since the last successful write
	failing error  // the error of the last write, nil once one succeeds
}

// Write writes p, one or more whole lines (a TextHandler writes one record
// per call), after the notice of lines lost before it, if any.
func (g *lineGuard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lost > 0 || g.cut {
		n, err := g.w.Write(g.lossNotice(p))
		if err != nil {
			g.fail(p, n > 0, err)
			return 0, err
		}
		g.lost, g.cut, g.why = 0, false, nil
	}
	n, err := g.w.Write(p)
	if err != nil {
		g.fail(p, n > 0, err)
		return n, err
	}
	g.failing, g.worked = nil, true
	return n, nil
}

// fail counts the lines of p as lost; cut says the destination took the
// start of what was written, which the next write must end first.
func (g *lineGuard) fail(p []byte, cut bool, err error) {
	n := uint64(max(bytes.Count(p, []byte{'\n'}), 1))
	g.lost += n
	g.total += n
	g.cut = g.cut || cut
	g.failing = err
	if g.why == nil {
		g.why = err
		if g.worked {
			g.reportFailure(err)
		}
	}
}

// lossNotice is the line that goes before next after lines were lost, in
// next's format (a journal or syslog line starts with its <priority>), and
// preceded by a newline that ends a line cut short.
func (g *lineGuard) lossNotice(next []byte) []byte {
	var b bytes.Buffer
	if g.cut {
		b.WriteByte('\n')
	}
	lines := "lines"
	if g.lost == 1 {
		lines = "line"
	}
	msg := fmt.Sprintf("log: %s %s lost: %v", thousands(g.lost), lines, pathErr(g.why))
	if g.cut {
		msg += " (the line above was cut short)"
	}
	formatLine(&b, len(next) > 0 && next[0] == '<', slog.LevelWarn, msg)
	return b.Bytes()
}

// reportFailure says once per failing spell, outside the log, that the log
// cannot be written. A log that never worked is not reported here: that is
// a start-up failure, which the runner reports through Failing.
func (g *lineGuard) reportFailure(err error) {
	msg := fmt.Sprintf("%s: cannot write: %v; lost lines are counted and reported in the log once writing works again", g.sink.describe(), pathErr(err))
	if g.stderr != nil && !g.isLog(g.stderr) {
		var b bytes.Buffer
		formatLine(&b, IsJournal(g.stderr), slog.LevelError, msg)
		g.stderr.Write(b.Bytes())
	}
	if g.sink.closer != nil || g.syslogNet == "-" {
		return // syslog is the log itself, or there is none to tell
	}
	if w, err := syslog.Dial(g.syslogNet, g.syslogAddr, syslog.LOG_ERR|syslog.LOG_DAEMON, g.tag); err == nil {
		w.Err(msg)
		w.Close()
	}
}

// formatLine writes msg to b as a TextHandler line of this moment.
func formatLine(b *bytes.Buffer, journal bool, level slog.Level, msg string) {
	h := NewTextHandler(b, &Options{Journal: journal})
	h.Handle(context.Background(), slog.NewRecord(time.Now(), level, msg, 0))
}

// isLog reports whether f is the log itself or /dev/null, where a report
// about the log is no use.
func (g *lineGuard) isLog(f *os.File) bool {
	var st, dest syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil {
		return true
	}
	err := error(syscall.ENOENT)
	if p := g.sink.Path(); p != "" {
		err = syscall.Stat(p, &dest)
	} else if out, ok := g.w.(*os.File); ok {
		err = syscall.Fstat(int(out.Fd()), &dest)
	}
	if err == nil && dest.Dev == st.Dev && dest.Ino == st.Ino {
		return true
	}
	var null syscall.Stat_t
	return st.Mode&syscall.S_IFMT == syscall.S_IFCHR && syscall.Stat(os.DevNull, &null) == nil && null.Rdev == st.Rdev
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
