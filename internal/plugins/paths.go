package plugins

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// PathUse says how a service uses the file or directory an option names.
// Declared once per option with MarkPath, it tells the runner which values
// are paths: those written in an application file are resolved against
// the file's directory, and `twistd check` opens each as the service will.
type PathUse struct {
	// Dir: the option names a directory; otherwise a regular file.
	Dir bool
	// Early: opened in the privileged step, before --chroot, so the path
	// is outside the jail. Otherwise it is opened after the chroot, inside.
	Early bool
	// Privileged: read only in the privileged step, by the starting user
	// (a key, a password file); it implies Early. Otherwise the --uid
	// user reads it.
	Privileged bool
	// Max is the largest size, in bytes, a file may have (0: no limit).
	Max int64
}

// pathKey marks path options; its value is the PathUse, encoded.
const pathKey = "twistd_path"

// MarkPath declares that the option name takes a path, used as use says.
func MarkPath(fs *pflag.FlagSet, name string, use PathUse) {
	kind := "file"
	if use.Dir {
		kind = "dir"
	}
	when := "late"
	switch {
	case use.Privileged:
		when = "privileged"
	case use.Early:
		when = "early"
	}
	if err := fs.SetAnnotation(name, pathKey, []string{kind, when, strconv.FormatInt(use.Max, 10)}); err != nil {
		panic(fmt.Sprintf("plugins: %v", err))
	}
}

// PathOf returns how the option f's path is used, if it takes one.
func PathOf(f *pflag.Flag) (PathUse, bool) {
	v := f.Annotations[pathKey]
	if len(v) != 3 {
		return PathUse{}, false
	}
	max, _ := strconv.ParseInt(v[2], 10, 64)
	return PathUse{Dir: v[0] == "dir", Early: v[1] != "late", Privileged: v[1] == "privileged", Max: max}, true
}

// Open opens path for reading as use says, without blocking: a named pipe
// or a device is refused rather than read (opening a FIFO would wait for a
// writer; /dev/zero never ends), and so is a file larger than use.Max.
func Open(path string, use PathUse) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if use.Dir {
		flags |= syscall.O_DIRECTORY
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if err = bare(err); errors.Is(err, syscall.ENOTDIR) {
			err = errors.New("not a directory")
		}
		return nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case use.Dir && !fi.IsDir():
		err = errors.New("not a directory")
	case !use.Dir && !fi.Mode().IsRegular():
		err = fmt.Errorf("not a regular file (%s)", kindOf(fi.Mode()))
	case use.Max > 0 && fi.Size() > use.Max:
		err = fmt.Errorf("larger than the limit of %s (%d bytes)", Size(use.Max), fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads the regular file at path, refusing one larger than max
// bytes (also when it grows while being read).
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path, PathUse{Max: max})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("larger than the limit of %s", Size(max))
	}
	if err != nil {
		return nil, bare(err)
	}
	return b, nil
}

// Size writes a byte count as the help texts do: 1 MiB, 64 MiB, 512 bytes.
func Size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return strings.TrimSpace(m.Type().String())
}

func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
