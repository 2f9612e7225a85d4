package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/syslog"
	"net"
	"os"
	"strconv"
	"syscall"
)

// openSyslog connects to syslog (network "" = the local /dev/log socket).
// Lines must come from a TextHandler with Options.Journal set: the
// writer takes each line's <N> prefix as the message's severity.
func openSyslog(network, addr, tag string) (*Sink, error) {
	if tag == "" {
		tag = "twistd"
	}
	w, err := syslog.Dial(network, addr, syslog.LOG_INFO|syslog.LOG_DAEMON, tag)
	if err != nil {
		if network == "" {
			return nil, whyNoSyslog(localSyslog)
		}
		return nil, fmt.Errorf("syslog %s: %v", addr, err)
	}
	return &Sink{Writer: &syslogWriter{w: w}, closer: w}, nil
}

// localSyslog is the socket a local syslog daemon or journald listens on.
const localSyslog = "/dev/log"

// whyNoSyslog says why the local syslog at path cannot be reached:
// log/syslog only says "Unix syslog delivery error".
func whyNoSyslog(path string) error {
	var err error
	for _, network := range []string{"unixgram", "unix"} {
		var c net.Conn
		if c, err = net.Dial(network, path); err == nil {
			c.Close()
			return fmt.Errorf("syslog %s: connected only on a second try; is the syslog daemon restarting?", path)
		}
	}
	if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
		return fmt.Errorf("no syslog socket at %s", path)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno // "connection refused", not the dial's wrappers
	}
	return fmt.Errorf("syslog %s: %v", path, err)
}

type syslogWriter struct{ w *syslog.Writer }

func (s *syslogWriter) Write(p []byte) (int, error) {
	msg, prio := splitPriority(p)
	var err error
	switch prio {
	case 3:
		err = s.w.Err(msg)
	case 4:
		err = s.w.Warning(msg)
	case 7:
		err = s.w.Debug(msg)
	default:
		err = s.w.Info(msg)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// splitPriority takes "<N>rest\n" apart; without a prefix it is info.
func splitPriority(p []byte) (string, int) {
	p = bytes.TrimRight(p, "\n")
	if len(p) > 2 && p[0] == '<' {
		if i := bytes.IndexByte(p, '>'); i > 1 {
			if n, err := strconv.Atoi(string(p[1:i])); err == nil {
				return string(p[i+1:]), n
			}
		}
	}
	return string(p), 6
}

// IsJournal reports whether f is the stream systemd's journal gave this
// service: JOURNAL_STREAM holds "DEV:INODE" of that stream, and must match
// f itself (a child that inherited the variable but redirected its output
// is not connected to the journal).
func IsJournal(f *os.File) bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" || f == nil {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(v, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
