package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// The local root escalation of issue 12: the user a root daemon drops to
// owns the run directory (as the README's set-up has it) and plants its
// pidfile or log file as a symbolic link to a root-owned file. The start
// fails with one line and the target keeps its content, owner and mode;
// nothing of it reaches the log.
func TestPlantedLinksRefused(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipped: needs setpriv (Debian package util-linux)")
	}
	const secret = "root:$y$j9T$not-a-real-hash:19000:0:99999:7:::\n"
	for _, tc := range []struct{ name, plant, why string }{
		{"pidfile", "twistd.pid", "is a symbolic link; refusing to follow it"},
		{"logfile", "twistd.log", "is a symbolic link; refusing to follow it"},
		// A link on the way to the file, in the directory nobody owns.
		{"directory", "logs", "is a symbolic link in a directory other users can write"},
	} {
		for _, mode := range [][]string{nil, {"-n", "--logfile", "twistd.log"}} {
			t.Run(tc.name+strings.Join(mode, ""), func(t *testing.T) {
				// The target lives where only root may write, like /etc/shadow.
				safe := t.TempDir()
				target := filepath.Join(safe, "shadow")
				if err := os.WriteFile(target, []byte(secret), 0o640); err != nil {
					t.Fatal(err)
				}
				before, _ := os.Stat(target)

				dir := nobodyDir(t)
				writePoem(t, dir)
				link := filepath.Join(dir, tc.plant)
				linkTo := target
				if tc.plant == "logs" {
					linkTo = safe
				}
				plant := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "ln", "-s", linkTo, link)
				if out, err := plant.CombinedOutput(); err != nil {
					t.Fatalf("planting the link as nobody: %v: %s", err, out)
				}
				args := append([]string{"--uid", "nobody", "--gid", "nogroup"}, mode...)
				if tc.plant == "logs" {
					args = append(args, "--logfile", "logs/shadow")
				}
				args = append(args, "fastpoetry", "--port", "0", "--iface", "127.0.0.1", "--poem", "poem.txt")
				code, stdout, stderr := testutil.Run(t, dir, 20*time.Second, args...)
				if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.why) {
					t.Errorf("exit %d, stderr %q; want 1 and one line saying %q", code, stderr, tc.why)
				}
				if strings.Contains(stdout+stderr, "not-a-real-hash") {
					t.Errorf("the target's content leaked into the output: %q %q", stdout, stderr)
				}
				after, err := os.Stat(target)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(target)
				st := after.Sys().(*syscall.Stat_t)
				if string(b) != secret || st.Uid != 0 || st.Gid != 0 || after.Mode() != before.Mode() {
					t.Fatalf("target changed: %q uid %d gid %d mode %v", b, st.Uid, st.Gid, after.Mode())
				}
				if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("the planted link was replaced or removed: %v", err)
				}
				logPath := filepath.Join(dir, "twistd.log")
				if fi, err := os.Lstat(logPath); err != nil || !fi.Mode().IsRegular() {
					return // the planted link itself, checked above
				}
				if log, err := os.ReadFile(logPath); err == nil && strings.Contains(string(log), "not-a-real-hash") {
					t.Errorf("the target's content reached the log:\n%s", log)
				}
			})
		}
	}
}
