package ftplite

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readNoEcho shows each prompt on w and reads a line from the terminal
// f for it, with echo off, then puts the terminal back as it was. Echo
// goes off before the first prompt shows, so nothing typed at once after
// a prompt is echoed. The terminal is in raw-ish mode meanwhile (no echo,
// no signals, byte by byte), so that Ctrl-C arrives as a byte and ends
// the read here, with the echo restored, instead of killing the process
// with the terminal left silent.
func readNoEcho(f *os.File, w io.Writer, prompts ...string) ([][]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Iflag |= unix.ICRNL
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	var lines [][]byte
	for _, p := range prompts {
		fmt.Fprint(w, p)
		line, err := readLine(f)
		fmt.Fprint(w, "\r\n")
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// readLine reads one line typed on a raw terminal, handling erase keys.
func readLine(f *os.File) ([]byte, error) {
	var pw []byte
	b := make([]byte, 1)
	for {
		n, err := f.Read(b)
		if n == 0 || err != nil {
			if err == nil || err == io.EOF {
				err = errors.New("no password given")
			}
			return nil, err
		}
		switch c := b[0]; {
		case c == '\n' || c == '\r':
			return pw, nil
		case c == 3: // Ctrl-C
			return nil, errors.New("interrupted")
		case c == 4 && len(pw) == 0: // Ctrl-D on an empty line
			return nil, errors.New("no password given")
		case c == 127 || c == 8: // erase
			if len(pw) > 0 {
				pw = pw[:len(pw)-1]
			}
		case c == 21: // Ctrl-U: erase the line
			pw = pw[:0]
		default:
			if len(pw) > maxPassword {
				continue // refused once the line ends
			}
			pw = append(pw, c)
		}
	}
}
