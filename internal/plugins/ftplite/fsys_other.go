//go:build !linux

package ftplite

import (
	"os"
	"time"
)

// setModTime sets the modification time of rel, which the caller opened
// as f. Without Linux's futimens on a descriptor this goes by name:
// Root.Chtimes cannot leave the root, though a link swapped in for the
// file meanwhile may get the time instead.
func setModTime(root *os.Root, rel string, _ *os.File, t time.Time) error {
	return root.Chtimes(rel, time.Time{}, t)
}

// renameNoReplace renames oldname to newname, both names in dir, without
// ever replacing newname.
func renameNoReplace(dir *os.Root, oldname, newname string) error {
	return linkNoReplace(dir, oldname, newname)
}
