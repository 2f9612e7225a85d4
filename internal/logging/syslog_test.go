package logging

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Lines reach a real syslog socket with the tag, our pid and the record's
// severity under the daemon facility, without our own timestamp.
func TestSyslogSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sink, err := openSyslog("unixgram", path, "mytag")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	log := slog.New(NewTextHandler(sink, &Options{Journal: true}))
	log.Info("hello", "k", "v")
	log.Warn("careful", "system", "ftp,3,127.0.0.1")
	log.Error("boom")

	for _, want := range []string{
		`^<30>.* mytag\[%d\]: \[-\] hello k=v\n?$`,
		`^<28>.* mytag\[%d\]: \[ftp,3,127\.0\.0\.1\] WARNING: careful\n?$`,
		`^<27>.* mytag\[%d\]: \[-\] ERROR: boom\n?$`,
	} {
		buf := make([]byte, 2048)
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(fmt.Sprintf(want, os.Getpid()))
		if !re.Match(buf[:n]) {
			t.Errorf("got %q, want match for %s", buf[:n], re)
		}
	}
}

func TestSyslogUnreachableIsAnError(t *testing.T) {
	_, err := openSyslog("unixgram", filepath.Join(t.TempDir(), "none.sock"), "x")
	if err == nil {
		t.Fatal("no error for a missing syslog socket")
	}
}

func TestSplitPriority(t *testing.T) {
	for in, want := range map[string]struct {
		msg  string
		prio int
	}{
		"<3>[-] x\n": {"[-] x", 3},
		"[-] y\n":    {"[-] y", 6},
		"<z>w":       {"<z>w", 6},
	} {
		msg, prio := splitPriority([]byte(in))
		if msg != want.msg || prio != want.prio {
			t.Errorf("splitPriority(%q) = %q, %d", in, msg, prio)
		}
	}
}
