package logging

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/twistd-go/twistd/internal/safefile"
)

// logFile is the log file: written through a descriptor opened by the
// rules of package safefile until rotation starts, then through
// lumberjack. lumberjack opens, renames and chowns by name, following
// symbolic links, so it only takes over once the process runs as the user
// it will keep (after the privilege drop), or in a directory only root and
// that user can write: what it could then be steered into is nothing that
// user could not write anyway.
type logFile struct {
	mu     sync.Mutex
	path   string
	owner  int      // the user the daemon will run as, -1 for this one
	direct *os.File // nil once lumberjack writes
	lj     *lumberjack.Logger
}

// openLogFile opens path for appending; maxSizeMB 0 means no rotation.
func openLogFile(path string, maxSizeMB, maxFiles, owner int) (*logFile, error) {
	f, d, err := safefile.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file %w", err)
	}
	defer d.Close()
	if !safefile.Owned(f, owner) {
		f.Close()
		return nil, fmt.Errorf("log file %s belongs to another user; refusing to write to it", path)
	}
	l := &logFile{path: path, owner: owner, direct: f}
	if maxSizeMB > 0 {
		stayRoot := os.Geteuid() == 0 && owner < 0
		if stayRoot && !d.Trusted() {
			f.Close()
			return nil, fmt.Errorf("log file %s: other users can write %s, and a root daemon rotates its log by name; run with --uid, log to a directory only root can write, or give --logfile-max-size 0 (no rotation)", path, filepath.Dir(path))
		}
		l.lj = &lumberjack.Logger{Filename: path, MaxSize: maxSizeMB, MaxBackups: maxFiles}
	}
	return l, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.direct != nil {
		return l.direct.Write(p)
	}
	if l.lj == nil {
		return 0, os.ErrClosed
	}
	return l.lj.Write(p)
}

// startRotation hands writing to lumberjack, once the process runs as the
// user it keeps.
func (l *logFile) startRotation() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lj == nil || l.direct == nil {
		return nil
	}
	err := l.direct.Close()
	l.direct = nil
	return err
}

// reopen makes the next line go to a file opened afresh by name. lumberjack
// has no reopen; its Close does exactly this, because Write reopens a
// closed Logger by name.
func (l *logFile) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.direct == nil {
		return l.lj.Close()
	}
	f, d, err := safefile.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file %w", err)
	}
	d.Close()
	l.direct.Close()
	l.direct = f
	return nil
}

// chown gives the open file to uid/gid; never a name.
func (l *logFile) chown(uid, gid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.direct == nil {
		return nil
	}
	if err := l.direct.Chown(uid, gid); err != nil {
		return fmt.Errorf("log file %s: %w", l.path, pathErr(err))
	}
	return nil
}

// rebase changes the path the file is reopened and rotated by, after a
// chroot moved the old absolute path; the open descriptor stays.
func (l *logFile) rebase(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.path = path
	if l.lj == nil {
		return nil
	}
	err := l.lj.Close()
	l.lj.Filename = path
	return err
}

// openAppend opens the log file afresh for appending (the daemon's stderr).
func (l *logFile) openAppend() (*os.File, error) {
	l.mu.Lock()
	path := l.path
	l.mu.Unlock()
	f, d, err := safefile.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file %w", err)
	}
	d.Close()
	return f, nil
}

func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.direct != nil {
		err = l.direct.Close()
		l.direct = nil
	}
	if l.lj != nil {
		if e := l.lj.Close(); err == nil {
			err = e
		}
	}
	return err
}

// MaxSizeMB is the largest rotation size accepted (1 TiB): lumberjack
// counts bytes in an int64, which overflows from 2^43 MiB.
const MaxSizeMB = 1 << 20
