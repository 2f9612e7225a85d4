package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// syslogNamespace is the shell that runs its arguments in a private mount
// namespace whose local syslog socket is $SOCK: bound over /dev/log when
// the host has one, else /run is replaced by $SOCK's directory so that
// /var/run/syslog, the next path log/syslog tries, is $SOCK. The host's
// syslog sees nothing.
const syslogNamespace = `set -e
mount --make-rprivate /
if [ -e /dev/log ]; then mount --bind "$SOCK" /dev/log; else mount --bind "$(dirname "$SOCK")" /run; fi
exec "$@"`

// A daemon started with --syslog sends every line to the local syslog
// socket: tagged with --prefix and its own pid, daemon facility at the
// record's severity, without a timestamp of its own, and no log file.
func TestDaemonLogsToSyslog(t *testing.T) {
	requireRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipped: needs unshare (Debian package util-linux)")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("skipped: needs mount (Debian package mount)")
	}
	if out, err := exec.Command(unshare, "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("skipped: no private mount namespace here: %v %s", err, out)
	}
	dir := t.TempDir()
	sockDir := filepath.Join(dir, "run")
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "syslog")
	lines := datagrams(t, sock)
	poem := writePoem(t, dir)
	pidfile := filepath.Join(dir, "poetry.pid")
	port := testutil.FreePort(t)
	cmd := exec.Command(unshare, "-m", "sh", "-c", syslogNamespace, "sh", testutil.Binary(t),
		"--syslog", "--prefix", "poetry", "--pidfile", pidfile,
		"fastpoetry", "--port", fmt.Sprint(port), "--iface", "127.0.0.1", "--poem", poem)
	cmd.Env = append(os.Environ(), "SOCK="+sock)
	pid := startDaemonCmd(t, cmd, dir, pidfile)
	if got := fetch(t, fmt.Sprintf("127.0.0.1:%d", port)); got != testPoem {
		t.Fatalf("poem: got %q", got)
	}
	stopDaemon(t, pid, pidfile)

	// RFC 3164 as log/syslog writes it to a local socket.
	line := regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d poetry\[(\d+)\]: (.*)\n?$`)
	var got []string
	for done := false; !done; {
		var s string
		select {
		case s = <-lines:
		case <-time.After(10 * time.Second):
			t.Fatalf("no \"shut down\" line on the syslog socket; got:\n%s", strings.Join(got, ""))
		}
		got = append(got, s)
		m := line.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("not a syslog line from the daemon: %q", s)
		}
		if m[1] != "30" || m[2] != fmt.Sprint(pid) || !strings.HasPrefix(m[3], "[") {
			t.Errorf("want priority 30 (daemon.info), pid %d and a message starting with its system tag: %q", pid, s)
		}
		done = strings.HasPrefix(m[3], "[-] shut down")
	}
	all := strings.Join(got, "")
	for want := range strings.SplitSeq(") starting up|listening on 127.0.0.1|connection closed sent=74|received SIGTERM", "|") {
		if !strings.Contains(all, want) {
			t.Errorf("no syslog line with %q; got:\n%s", want, all)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(ents) > 0 {
		t.Errorf("--syslog wrote log files too: %v", ents)
	}
}
