// Package daemon holds the Unix process mechanics of the runner: the locked
// pidfile, the re-exec into a detached child with a status pipe back to the
// parent, umask, chroot, privilege drop and systemd notification.
//
// Pidfile contract (shared with `twistd stop` / `twistd status`): the file
// holds the daemon's pid and a newline; the running daemon holds an
// exclusive flock(2) on it for its whole life, so a file that exists while
// nobody holds the lock is stale; the daemon removes it on a clean exit.
package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twistd-go/twistd/internal/safefile"
)

// State is what Probe found at a pidfile path.
type State int

const (
	// Absent: no file at the path.
	Absent State = iota
	// Stale: the file exists but no process holds its lock (the daemon that
	// wrote it is gone, or could not remove it after dropping privileges).
	Stale
	// Live: a process holds the lock: the daemon is running.
	Live
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Stale:
		return "stale"
	case Live:
		return "live"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Probe reports whether the daemon owning the pidfile at path runs, and the
// pid the file names (0 if it names none yet: a daemon that has locked the
// file but not written it). It never changes the file. A path that is not
// a pidfile (a symbolic link, a special file, content other than a pid) is
// an error naming what is in the way.
func Probe(path string) (State, int, error) {
	f, d, err := openPidfile(path, os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return Absent, 0, nil
	}
	if err != nil {
		return Absent, 0, err
	}
	defer d.Close()
	defer f.Close()
	pid, err := readPid(f)
	if err != nil {
		return Absent, 0, notPidfile(path, err)
	}
	// A shared lock conflicts only with the daemon's exclusive one.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return Live, pid, nil
	}
	if err != nil {
		return Absent, 0, fmt.Errorf("pidfile %s: lock: %w", path, err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return Stale, pid, nil
}

// openPidfile opens a pidfile by the rules of package safefile: never
// through a symbolic link, only a regular file with one name.
func openPidfile(path string, flag int) (*os.File, *safefile.Dir, error) {
	f, d, err := safefile.OpenFile(path, flag, 0o644)
	if err != nil {
		var se *safefile.Error
		if errors.As(err, &se) && se.Why == "" {
			return nil, nil, fmt.Errorf("pidfile %s: %w", path, se.Err)
		}
		return nil, nil, fmt.Errorf("pidfile %w", err)
	}
	return f, d, nil
}

// errNotPid marks a file whose content is not a pid.
var errNotPid = errors.New("holds something other than a pid")

func notPidfile(path string, err error) error {
	return fmt.Errorf("pidfile %s %w; not a pidfile, leaving it alone", path, err)
}

// ReadPidfile returns the pid named by the file at path.
func ReadPidfile(path string) (int, error) {
	f, d, err := openPidfile(path, os.O_RDONLY)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	defer f.Close()
	pid, err := readPid(f)
	if err != nil {
		return 0, notPidfile(path, err)
	}
	if pid == 0 {
		return 0, fmt.Errorf("pidfile %s is empty", path)
	}
	return pid, nil
}

// readPid returns the pid f holds, 0 for an empty file, and errNotPid for
// anything else. The content is never quoted back: the file may be
// someone else's.
func readPid(f *os.File) (int, error) {
	b, err := io.ReadAll(io.LimitReader(f, 65))
	if err != nil {
		return 0, err
	}
	if len(b) > 64 {
		return 0, errNotPid
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || strings.ContainsAny(s, " \t\n") {
		return 0, errNotPid
	}
	return pid, nil
}

// RunningError says another daemon holds the pidfile.
type RunningError struct {
	Path string
	Pid  int // 0 if it has not written its pid yet
}

func (e *RunningError) Error() string {
	if e.Pid == 0 {
		return fmt.Sprintf("another twistd is starting with pidfile %s", e.Path)
	}
	return fmt.Sprintf("another twistd is running as pid %d (pidfile %s)", e.Pid, e.Path)
}

// Pidfile is a pidfile held by this process.
type Pidfile struct {
	path string
	name string
	dir  *safefile.Dir // removal goes through it, so a chroot changes nothing
	f    *os.File
	info *os.File // the record beside it, once written
	// Previous describes a stale pid the file held before we took it (""
	// when it was absent or empty), so the runner can log what it replaced.
	Previous string
}

// Acquire creates or takes over the pidfile at path: it locks the file
// (exclusive, non-blocking; a held lock is a RunningError naming the
// holder's pid) and writes our pid and a newline. The check and the claim
// are one flock, so of two simultaneous starters exactly one wins. perm is
// the mode for a new file (the umask applies). It writes only over a
// regular file that holds a pid or nothing, reached without a symbolic
// link; anything else is refused untouched.
func Acquire(path string, perm os.FileMode) (*Pidfile, error) {
	// The loop covers a holder that unlinks the file between our open and
	// our lock: we then hold a lock on a file nobody can see, so try again.
	for range 50 {
		f, d, err := safefile.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			var se *safefile.Error
			if errors.As(err, &se) && se.Why == "" {
				return nil, fmt.Errorf("pidfile %s: %w", path, se.Err)
			}
			return nil, fmt.Errorf("pidfile %w", err)
		}
		p := &Pidfile{path: path, name: filepath.Base(path), dir: d, f: f}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := readPid(f)
			p.close()
			return nil, &RunningError{Path: path, Pid: pid}
		}
		if err != nil {
			p.close()
			return nil, fmt.Errorf("pidfile %s: lock: %w", path, err)
		}
		if !d.Holds(p.name, f) {
			p.close()
			time.Sleep(time.Millisecond)
			continue
		}
		old, err := readPid(f)
		if err != nil {
			p.close()
			return nil, notPidfile(path, err)
		}
		if old != 0 {
			p.Previous = describeStale(old)
		}
		if err := p.write(); err != nil {
			p.close()
			return nil, fmt.Errorf("pidfile %s: %w", path, bare(err))
		}
		return p, nil
	}
	return nil, fmt.Errorf("pidfile %s: keeps being replaced while locking it", path)
}

func (p *Pidfile) close() {
	p.removeRecord()
	p.f.Close()
	p.dir.Close()
	p.f = nil
}

// describeStale says why a pid in an unlocked pidfile is not a daemon.
func describeStale(pid int) string {
	if Alive(pid) {
		return fmt.Sprintf("stale pid %d (that pid now belongs to another process, which does not hold the lock)", pid)
	}
	return fmt.Sprintf("stale pid %d (no such process)", pid)
}

func (p *Pidfile) write() error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	if _, err := p.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return p.f.Sync()
}

// Path returns the pidfile's path.
func (p *Pidfile) Path() string { return p.path }

// Chown gives the file to uid/gid, so the daemon can still rewrite it after
// dropping privileges. It changes the file we hold, never a name.
func (p *Pidfile) Chown(uid, gid int) error {
	if err := errors.Join(p.f.Chown(uid, gid), p.chownRecord(uid, gid)); err != nil {
		return fmt.Errorf("pidfile %s: %w", p.path, bare(err))
	}
	return nil
}

// Release removes the file and then drops the lock. Removing first means no
// starter can lock the old inode after we let go of it. If the file cannot
// be removed (the daemon dropped privileges and may not write the
// directory), it is left behind unlocked, which Probe and Acquire see as
// stale; the error says so. A file that replaced ours is left alone.
func (p *Pidfile) Release() error {
	if p == nil || p.f == nil {
		return nil
	}
	p.removeRecord()
	var err error
	if rmErr := p.dir.Remove(p.name, p.f); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = fmt.Errorf("cannot remove pidfile %s: %w (left behind unlocked, so it counts as stale)", p.path, bare(rmErr))
	}
	p.close()
	return err
}

// RemoveStale removes the pidfile at path if it is a pidfile nobody holds:
// under our own exclusive lock, so a daemon starting this moment is never
// robbed of its file. It reports whether it removed one.
func RemoveStale(path string) (bool, error) {
	f, d, err := openPidfile(path, os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	defer f.Close()
	if _, err := readPid(f); err != nil {
		return false, notPidfile(path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, fmt.Errorf("pidfile %s is locked again: %w", path, err)
	}
	if err := d.Remove(filepath.Base(path), f); err != nil {
		if errors.Is(err, safefile.ErrNotOurs) || errors.Is(err, os.ErrNotExist) {
			return false, nil // replaced meanwhile: not ours to remove
		}
		return false, fmt.Errorf("pidfile %w", err)
	}
	return true, nil
}

// DirWritable reports whether this process may create and remove files in
// path's directory (checked with the effective ids).
func DirWritable(path string) bool {
	return unix.Faccessat(unix.AT_FDCWD, filepath.Dir(path), unix.W_OK|unix.X_OK, unix.AT_EACCESS) == nil
}

func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
