package logging

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Without a syslog daemon the error names the socket that is missing, not
// log/syslog's "Unix syslog delivery error".
func TestNoSyslogSocket(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "log")
	if err := whyNoSyslog(missing); err == nil || err.Error() != "no syslog socket at "+missing {
		t.Errorf("missing socket: %v", err)
	}
	// A socket nobody listens on any more.
	dead := filepath.Join(dir, "dead.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dead, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(dead); errors.Is(err, os.ErrNotExist) {
		// Closing removed it: make a socket file with no listener.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
	}
	if err := whyNoSyslog(dead); err == nil || err.Error() != "syslog "+dead+": connection refused" {
		t.Errorf("dead socket: %v", err)
	}
	if _, err := os.Stat(localSyslog); errors.Is(err, os.ErrNotExist) {
		_, err := Open(Config{Syslog: true}, nil)
		if _, serr := os.Stat("/var/run/syslog"); errors.Is(serr, os.ErrNotExist) {
			if err == nil || err.Error() != "no syslog socket at /dev/log" {
				t.Errorf("Open with --syslog and no /dev/log: %v", err)
			}
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 128311: "128,311", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
