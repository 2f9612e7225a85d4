package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inTmpfs runs the calling test again in a child process with a private
// mount namespace, where dir is a tmpfs of size bytes, so a test can fill
// a real filesystem without touching the host's. In the child it returns
// dir; in the parent it waits for the child, fails with its output if it
// failed, and returns "" (the caller then returns).
func inTmpfs(t *testing.T, size int) string {
	t.Helper()
	const env = "LOGGING_TEST_TMPFS"
	if dir := os.Getenv(env); dir != "" {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); errors.Is(err, syscall.EPERM) {
			t.Skipf("skipped: cannot mount a tmpfs here: %v", err)
		} else if err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a tmpfs needs root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+t.TempDir())
	// Go makes the child's mounts private when it unshares CLONE_NEWNS.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("skipped: no private mount namespace here: %v", err)
	}
	if err == nil && strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skipf("%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a private tmpfs: %v\n%s", err, out)
	}
	return ""
}

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1 << 16 { // bounded: far more than any tmpfs a test mounts
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatal("the filesystem never filled")
	return ""
}

// A full disk loses no line silently and tears none: lines that cannot be
// written are counted, a line cut at ENOSPC is ended before the next, and
// once space returns the first line says how many were lost and why. The
// first failure is also reported on stderr and to syslog, once.
func TestFullDiskCountsLostLines(t *testing.T) {
	dir := inTmpfs(t, 64<<10)
	if dir == "" {
		return
	}
	for _, size := range []int{0, 1} { // no rotation, then rotation
		t.Run(fmt.Sprintf("max-size-%d", size), func(t *testing.T) {
			path := filepath.Join(dir, "twistd.log")
			os.Remove(path)
			sink, err := Open(Config{File: path, MaxSizeMB: size}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			g := sink.Writer.(*lineGuard)
			g.stderr = stderr
			sock := filepath.Join(t.TempDir(), "syslog.sock")
			syslogd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer syslogd.Close()
			g.syslogNet, g.syslogAddr = "unixgram", sock

			log := slog.New(NewTextHandler(sink, nil))
			const before, during, after = 10, 300, 5
			n := 0
			line := func() {
				n++
				// Lengths vary so that some line crosses the last free byte.
				log.Info(fmt.Sprintf("line %d %s", n, strings.Repeat("x", 40+n%37)))
			}
			for range before {
				line()
			}
			filler := fill(t, dir)
			for range during {
				line()
			}
			if err := sink.Failing(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("Failing() = %v while the disk is full", err)
			}
			os.Remove(filler)
			for range after {
				line()
			}
			if err := sink.Failing(); err != nil {
				t.Errorf("Failing() = %v after space returned", err)
			}

			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			whole := regexp.MustCompile(`^\S+ \[-\] line (\d+) x+$`)
			notice := regexp.MustCompile(`^\S+ \[-\] WARNING: log: ([\d,]+) lines? lost: no space left on device( \(the line above was cut short\))?$`)
			var seen []int
			lost, notices := 0, 0
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			for i, l := range lines {
				if m := whole.FindStringSubmatch(l); m != nil && len(l) == len(strings.SplitN(l, " ", 2)[0])+len(fmt.Sprintf(" [-] line %s ", m[1]))+40+atoi(m[1])%37 {
					seen = append(seen, atoi(m[1]))
					continue
				}
				if m := notice.FindStringSubmatch(l); m != nil {
					notices++
					lost += atoi(strings.ReplaceAll(m[1], ",", ""))
					continue
				}
				// Only a line cut short by the full disk, ended by the
				// notice that follows it.
				if i+1 >= len(lines) || !strings.HasSuffix(lines[i+1], "(the line above was cut short)") {
					t.Errorf("line %d is neither whole nor a cut line before the notice: %q", i+1, l)
				}
			}
			if notices != 1 {
				t.Errorf("%d loss notices, want 1:\n%s", notices, data)
			}
			if len(seen)+lost != n {
				t.Errorf("%d whole lines + %d counted lost != %d logged:\n%s", len(seen), lost, n, data)
			}
			if got := sink.Lost(); got != uint64(lost) {
				t.Errorf("Lost() = %d, the notice says %d", got, lost)
			}
			for i, v := range seen {
				if i > 0 && v <= seen[i-1] || v > before && v <= before+during && i < before-1 {
					t.Errorf("lines out of order: %v", seen)
					break
				}
			}
			if last := seen[len(seen)-after:]; last[0] != n-after+1 {
				t.Errorf("lines after space returned: %v", last)
			}

			report, _ := os.ReadFile(stderr.Name())
			if c := strings.Count(string(report), "\n"); c != 1 || !strings.Contains(string(report), "log file "+path+": cannot write: no space left on device; lost lines are counted") {
				t.Errorf("stderr got %d lines, want the one failure report:\n%s", c, report)
			}
			buf := make([]byte, 1024)
			syslogd.SetReadDeadline(time.Now().Add(5 * time.Second))
			if k, err := syslogd.Read(buf); err != nil || !strings.Contains(string(buf[:k]), "log file "+path+": cannot write: no space left on device") {
				t.Errorf("syslog got %q, %v", buf[:k], err)
			}
			syslogd.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if k, err := syslogd.Read(buf); err == nil {
				t.Errorf("syslog got a second report: %q", buf[:k])
			}
		})
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// A log that cannot be written at all from the start says so through
// Failing, which the runner turns into a failed start, and only there.
func TestFullDiskFromTheStart(t *testing.T) {
	dir := inTmpfs(t, 16<<10)
	if dir == "" {
		return
	}
	fill(t, dir)
	for _, size := range []int{0, 1} {
		path := filepath.Join(dir, fmt.Sprintf("log-%d", size))
		sink, err := Open(Config{File: path, MaxSizeMB: size}, nil)
		if err != nil {
			t.Fatal(err)
		}
		stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		g := sink.Writer.(*lineGuard)
		g.stderr, g.syslogNet = stderr, "-"
		if err := sink.Failing(); err != nil {
			t.Errorf("Failing() = %v before anything was written", err)
		}
		slog.New(NewTextHandler(sink, nil)).Info("twistd starting up")
		want := "log file " + path + ": cannot write: no space left on device"
		if err := sink.Failing(); err == nil || err.Error() != want {
			t.Errorf("max size %d: Failing() = %v, want %q", size, err, want)
		}
		// The runner reports it, as a failed start: one line, not two.
		if report, _ := os.ReadFile(stderr.Name()); len(report) > 0 {
			t.Errorf("a log that never worked reported on stderr too: %s", report)
		}
		sink.Close()
	}
}
