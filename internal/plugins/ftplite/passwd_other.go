//go:build !linux

package ftplite

import (
	"errors"
	"io"
	"os"
)

// Without Linux's termios calls the terminal is not read: the password
// comes through standard input.
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File, io.Writer, ...string) ([][]byte, error) {
	return nil, errors.New("cannot turn off the echo of this terminal: give the password on standard input")
}
