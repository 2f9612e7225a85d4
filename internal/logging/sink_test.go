package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A size limit lumberjack cannot count in bytes (from 2^43 MiB its int64
// overflows and every write fails) is refused at Open, as is a negative one.
func TestMaxSizeBounds(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{-1, MaxSizeMBLimit + 1, 1 << 43} {
		_, err := Open(Config{File: filepath.Join(dir, "x.log"), MaxSizeMB: size}, nil)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("log file size limit %d MiB: must be from 0 (no rotation) to 1048576 (1 TiB)", size)) {
			t.Errorf("MaxSizeMB %d: got %v", size, err)
		}
	}
	sink, err := Open(Config{File: filepath.Join(dir, "max.log"), MaxSizeMB: MaxSizeMBLimit}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	slog.New(NewTextHandler(sink, nil)).Info("fits")
	if err := sink.Failing(); err != nil {
		t.Errorf("at the largest size: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "max.log")); !strings.HasSuffix(string(data), "[-] fits\n") {
		t.Errorf("log holds %q", data)
	}
}

// MaxSizeMB 0 never rotates (logrotate's job then); SIGUSR1's Reopen still
// moves writing to a new file at the path.
func TestNoSizeRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.log")
	sink, err := Open(Config{File: path, MaxSizeMB: 0, MaxFiles: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	log := slog.New(NewTextHandler(sink, nil))
	long := strings.Repeat("y", 1000)
	for range 3 << 10 { // 3 MiB and more: past lumberjack's default and 1 MiB
		log.Info(long)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("rotated without a size limit: %v", ents)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 3<<20 {
		t.Fatalf("log: %v %v", st, err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := sink.Reopen(); !ok || err != nil {
		t.Fatalf("Reopen: %v %v", ok, err)
	}
	log.Info("after reopen")
	if data, err := os.ReadFile(path); err != nil || !strings.HasSuffix(string(data), "[-] after reopen\n") || strings.Count(string(data), "\n") != 1 {
		t.Errorf("new file holds %q, %v", data, err)
	}
	if err := sink.Rebase(path + ".2"); err != nil {
		t.Fatal(err)
	}
	log.Info("after rebase")
	if data, err := os.ReadFile(path + ".2"); err != nil || !strings.HasSuffix(string(data), "[-] after rebase\n") {
		t.Errorf("rebased file holds %q, %v", data, err)
	}
}

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
