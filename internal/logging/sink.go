package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// Open opens the destination. For a file it checks at once that the file
// can be opened, so a bad path is reported at start-up, not lost later; a
// new file gets mode 0640 less the umask.
func Open(c Config, stdout io.Writer) (*Sink, error) {
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
