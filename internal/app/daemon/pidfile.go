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
// pid the file names (0 if it names none, e.g. a daemon that has locked the
// file but not yet written it, or garbage). It never changes the file.
func Probe(path string) (State, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Absent, 0, nil
	}
	if err != nil {
		return Absent, 0, fmt.Errorf("pidfile %s: %w", path, bare(err))
	}
	defer f.Close()
	pid, _ := readPid(f)
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

// ReadPidfile returns the pid named by the file at path.
func ReadPidfile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, bare(err))
	}
	defer f.Close()
	pid, err := readPid(f)
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}

func readPid(f *os.File) (int, error) {
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, errors.New("empty")
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("no pid in %q", truncate(s, 20))
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
	f    *os.File
	// Previous describes what the file held before we took it ("" when it
	// was absent or empty), so the runner can log a replaced stale file.
	Previous string
}

// Acquire creates or takes over the pidfile at path: it locks the file
// (exclusive, non-blocking; a held lock is a RunningError naming the
// holder's pid) and writes our pid and a newline. The check and the claim
// are one flock, so of two simultaneous starters exactly one wins. perm is
// the mode for a new file (the umask applies).
func Acquire(path string, perm os.FileMode) (*Pidfile, error) {
	// The loop covers a holder that unlinks the file between our open and
	// our lock: we then hold a lock on a file nobody can see, so try again.
	for range 50 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			return nil, fmt.Errorf("pidfile %s: %w", path, bare(err))
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := readPid(f)
			f.Close()
			return nil, &RunningError{Path: path, Pid: pid}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pidfile %s: lock: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close()
			time.Sleep(time.Millisecond)
			continue
		}
		p := &Pidfile{path: path, f: f}
		old, _ := io.ReadAll(io.LimitReader(f, 64))
		if s := strings.TrimSpace(string(old)); s != "" {
			p.Previous = describeStale(s)
		}
		if err := p.write(); err != nil {
			f.Close()
			return nil, fmt.Errorf("pidfile %s: %w", path, bare(err))
		}
		return p, nil
	}
	return nil, fmt.Errorf("pidfile %s: keeps being replaced while locking it", path)
}

func describeStale(s string) string {
	if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
		if syscall.Kill(pid, 0) == nil {
			// Alive but not holding the lock: the pid was reused by an
			// unrelated process, or an old twistd without locking.
			return fmt.Sprintf("stale pid %d (that process does not hold the lock)", pid)
		}
		return fmt.Sprintf("stale pid %d (no such process)", pid)
	}
	return fmt.Sprintf("garbage %q", truncate(s, 20))
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

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Path returns the pidfile's path.
func (p *Pidfile) Path() string { return p.path }

// Chown gives the file to uid/gid, so the daemon can still rewrite it after
// dropping privileges.
func (p *Pidfile) Chown(uid, gid int) error {
	if err := p.f.Chown(uid, gid); err != nil {
		return fmt.Errorf("pidfile %s: %w", p.path, bare(err))
	}
	return nil
}

// Rebase changes the path used to remove the file, after a chroot made the
// old absolute path point elsewhere.
func (p *Pidfile) Rebase(path string) { p.path = path }

// Release removes the file and then drops the lock. Removing first means no
// starter can lock the old inode after we let go of it. If the file cannot
// be removed (the daemon dropped privileges and may not write the
// directory), it is left behind unlocked, which Probe and Acquire see as
// stale; the error says so.
func (p *Pidfile) Release() error {
	if p == nil || p.f == nil {
		return nil
	}
	var err error
	if rmErr := os.Remove(p.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = fmt.Errorf("cannot remove pidfile %s: %w (left behind unlocked, so it counts as stale)", p.path, bare(rmErr))
	}
	p.f.Close()
	p.f = nil
	return err
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
