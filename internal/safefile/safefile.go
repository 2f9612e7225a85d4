// Package safefile opens the files a daemon started as root writes on its
// own behalf (pidfile, log file) so that no other user can steer it into a
// file that is not its own.
//
// The rule: the last component of a path is never followed if it is a
// symbolic link, and only a regular file with a single link is accepted.
// The directories on the way are walked one component at a time; a
// symbolic link among them is followed only when nobody but root and the
// process itself could have planted it there (its directory is theirs and
// not writable by others, or sticky and the link is theirs). A user to
// whom the operator gave the run directory can then swap nothing the root
// process trusts: /var/run -> /run is followed, rundir/twistd.pid ->
// /etc/shadow is refused.
//
// It imports nothing of the project, so the logging and daemon packages
// both use it.
package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks bounds the symbolic links one walk follows, as the kernel's
// MAXSYMLINKS does.
const maxLinks = 40

// Error says why a path was refused; it names the path and what is in the
// way in one line.
type Error struct {
	Path string
	Why  string
	Err  error // the system error, when there was one
}

func (e *Error) Error() string {
	if e.Why == "" {
		return e.Path + ": " + e.Err.Error()
	}
	return e.Path + " " + e.Why
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotOurs marks refusals by the rule above (a link, a special file, a
// file with several names, an untrusted link in the way), as opposed to
// plain system errors such as a missing directory.
var ErrNotOurs = errors.New("not a file this process may write")

func refused(path, why string) error {
	return &Error{Path: path, Why: why, Err: ErrNotOurs}
}

func sysErr(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Error{Path: path, Err: err}
}

// Dir is an open directory, reached by the rule above. Files are created,
// opened and removed relative to it, so a rename of a directory on the way
// after the walk cannot redirect them; it also still reaches them after a
// chroot.
type Dir struct {
	f    *os.File // O_PATH
	path string   // as walked, for messages
}

// OpenDir walks to the directory at path (made absolute against the
// working directory).
func OpenDir(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, sysErr(path, err)
	}
	fd, err := walk(abs)
	if err != nil {
		return nil, err
	}
	return &Dir{f: os.NewFile(uintptr(fd), abs), path: abs}, nil
}

// walk opens abs component by component from /, with O_PATH so that a
// directory we may search but not read is no obstacle.
func walk(abs string) (int, error) {
	links := 0
	for restart := true; restart; {
		restart = false
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, sysErr("/", err)
		}
		done := "/"
		rest := strings.Split(strings.TrimPrefix(filepath.Clean(abs), "/"), "/")
		for i, name := range rest {
			if name == "" {
				continue
			}
			here := filepath.Join(done, name)
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				unix.Close(fd)
				return -1, sysErr(here, err)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if !linkTrusted(fd, &st) {
					unix.Close(fd)
					return -1, refused(here, "is a symbolic link in a directory other users can write; give the real path")
				}
				if links++; links > maxLinks {
					unix.Close(fd)
					return -1, sysErr(here, unix.ELOOP)
				}
				target, err := readlinkat(fd, name)
				unix.Close(fd)
				if err != nil {
					return -1, sysErr(here, err)
				}
				if !filepath.IsAbs(target) {
					target = filepath.Join(done, target)
				}
				abs = filepath.Join(append([]string{target}, rest[i+1:]...)...)
				restart = true
				break
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				unix.Close(fd)
				return -1, sysErr(here, unix.ENOTDIR)
			}
			next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				// ELOOP/ENOTDIR: swapped for a link since the stat.
				return -1, refused(here, "changed while it was being opened")
			}
			fd, done = next, here
		}
		if !restart {
			return fd, nil
		}
	}
	panic("unreachable")
}

// linkTrusted reports whether the link st, found in directory dirfd, can
// only have been made by root or by this process's user.
func linkTrusted(dirfd int, link *unix.Stat_t) bool {
	var dir unix.Stat_t
	if err := unix.Fstat(dirfd, &dir); err != nil {
		return false
	}
	ours := func(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }
	if !ours(dir.Uid) {
		return false
	}
	if dir.Mode&0o022 == 0 {
		return true
	}
	// Others may create entries in a sticky directory but not replace ours.
	return dir.Mode&unix.S_ISVTX != 0 && ours(link.Uid)
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
	}
}

// Path is the directory's path as walked.
func (d *Dir) Path() string { return d.path }

// Close releases the directory.
func (d *Dir) Close() error { return d.f.Close() }

// Open opens name in d with flag (os.O_* values; O_NOFOLLOW and O_CLOEXEC
// are added) and checks that what it got is a regular file with one link.
// A FIFO or device never blocks the open. perm is the mode of a file
// O_CREATE makes.
func (d *Dir) Open(name string, flag int, perm os.FileMode) (*os.File, error) {
	path := filepath.Join(d.path, name)
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
		return nil, refused(path, "is not a file name")
	}
	fd, err := unix.Openat(int(d.f.Fd()), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, uint32(perm.Perm()))
	if errors.Is(err, unix.ELOOP) {
		return nil, refused(path, "is a symbolic link; refusing to follow it")
	}
	if errors.Is(err, unix.EISDIR) {
		return nil, refused(path, "is a directory, not a regular file")
	}
	if err != nil {
		return nil, sysErr(path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := regular(f); err != nil {
		f.Close()
		return nil, err
	}
	// Regular files ignore O_NONBLOCK, but keep the descriptor as asked.
	if flag&unix.O_NONBLOCK == 0 {
		if err := unix.SetNonblock(fd, false); err != nil {
			f.Close()
			return nil, sysErr(path, err)
		}
	}
	return f, nil
}

func regular(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return sysErr(f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return refused(f.Name(), "is not a regular file")
	}
	if st.Nlink > 1 {
		return refused(f.Name(), fmt.Sprintf("has %d hard links; refusing a file that has other names", st.Nlink))
	}
	return nil
}

// Holds reports whether name in d is still the file f (same inode).
func (d *Dir) Holds(name string, f *os.File) bool {
	var now, ours unix.Stat_t
	return unix.Fstatat(int(d.f.Fd()), name, &now, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		unix.Fstat(int(f.Fd()), &ours) == nil && now.Dev == ours.Dev && now.Ino == ours.Ino
}

// Remove removes name from d if it is still the file f: a file that took
// its place meanwhile is not ours to remove.
func (d *Dir) Remove(name string, f *os.File) error {
	path := filepath.Join(d.path, name)
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return sysErr(path, err)
	}
	if !d.Holds(name, f) {
		return refused(path, "was replaced by another file; leaving it")
	}
	if err := unix.Unlinkat(int(d.f.Fd()), name, 0); err != nil {
		return sysErr(path, err)
	}
	return nil
}

// Owned reports whether f belongs to root, to this process's user, or to
// uid (the user the process will run as; -1 for none).
func Owned(f *os.File, uid int) bool {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return false
	}
	return st.Uid == 0 || int(st.Uid) == os.Geteuid() || uid >= 0 && int(st.Uid) == uid
}

// Trusted reports whether only root and this process's user can add or
// replace entries in d (sticky directories count as not trusted: others
// may create names there that a later open by name would follow).
func (d *Dir) Trusted() bool {
	var st unix.Stat_t
	if unix.Fstat(int(d.f.Fd()), &st) != nil {
		return false
	}
	return (st.Uid == 0 || int(st.Uid) == os.Geteuid()) && st.Mode&0o022 == 0
}

// OpenFile walks to path's directory and opens the file there (see
// Dir.Open). The directory is returned too, for a later Remove.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, *Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, sysErr(path, err)
	}
	d, err := OpenDir(filepath.Dir(abs))
	if err != nil {
		var se *Error
		if errors.As(err, &se) && se.Why == "" {
			se.Path = abs // a missing directory: name the file, as open(2) would
		}
		return nil, nil, err
	}
	f, err := d.Open(filepath.Base(abs), flag, perm)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return f, d, nil
}
