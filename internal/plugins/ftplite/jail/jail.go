// Package jail maps the paths an FTP client names onto a directory tree
// it cannot leave. Names are first resolved lexically on the virtual tree
// ("/" is the served root, ".." at the top stays at the top), then opened
// through an os.Root, which walks every component from a directory
// descriptor and refuses symbolic links that lead outside the root,
// including in intermediate directories and ones swapped in mid-request.
package jail

import (
	"errors"
	"path"
	"strings"
)

// ErrBadName reports a name holding NUL or another control character.
// Such names could forge reply or listing lines, so they are never used.
var ErrBadName = errors.New("file name contains control characters")

// Resolve returns the clean virtual path (always starting with "/") that
// arg names when the current directory is cwd.
func Resolve(cwd, arg string) (string, error) {
	if HasControl(arg) {
		return "", ErrBadName
	}
	p := arg
	if !strings.HasPrefix(p, "/") {
		p = cwd + "/" + p
	}
	return path.Clean("/" + p), nil
}

// Rel turns a virtual path from Resolve into a name relative to the root,
// as os.Root expects ("." for the root itself).
func Rel(virtual string) string {
	r := strings.TrimLeft(virtual, "/")
	if r == "" {
		return "."
	}
	return r
}

// HasControl reports whether s holds a byte below 0x20 or DEL.
func HasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
