package ftplite

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setModTime sets the modification time of f, a file opened through the
// root, and leaves its access time alone. It acts on the descriptor
// (utimensat(fd, NULL) is futimens(3) on Linux), so the inode the caller
// checked is the one changed: nothing is looked up by name again, and a
// symbolic link swapped in for the file meanwhile changes nothing.
// Root.Chtimes would look the name up again; it cannot leave the root
// either, but in that race it sets the link's own times, and it may find
// a directory or a pipe where the caller checked a file.
func setModTime(_ *os.Root, _ string, f *os.File, t time.Time) error {
	mtime, err := unix.TimeToTimespec(t)
	if err != nil {
		return err
	}
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, mtime}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return &os.PathError{Op: "futimens", Path: f.Name(), Err: errno}
	}
	return nil
}

// renameNoReplace renames oldname to newname, both names in dir, and
// fails with an fs.ErrExist error instead of replacing whatever newname
// is. It acts on dir's own descriptor (a "." opened relative to it), so
// the rename happens in that directory whatever was swapped in on the
// way to it since it was opened.
func renameNoReplace(dir *os.Root, oldname, newname string) error {
	d, err := dir.OpenFile(".", os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		rerr = unix.Renameat2(int(fd), oldname, int(fd), newname, unix.RENAME_NOREPLACE)
	}); err != nil {
		return err
	}
	if errors.Is(rerr, unix.EINVAL) || errors.Is(rerr, unix.ENOSYS) {
		// The file system has no RENAME_NOREPLACE.
		return linkNoReplace(dir, oldname, newname)
	}
	if rerr != nil {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: rerr}
	}
	return nil
}
