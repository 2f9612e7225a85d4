package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// chatload builds this command (the baseline server is chatload run
// again, so the test binary cannot stand in for it).
func chatload(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chatload")
	if out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

// runChatload runs name to completion within 60 s and returns its exit code,
// stdout and stderr.
func runChatload(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after 60 s\n%s%s", args, &stdout, &stderr)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// The idle scenario holds each count on twistd and on the baseline, every
// client reached by the roll call, and ends with one table row per count;
// -sources 3 spreads the clients over three loopback addresses.
func TestIdleRows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six servers")
	}
	code, out, errOut := runChatload(t, chatload(t), "-bin", testutil.Binary(t), "-scenario", "idle",
		"-idle-counts", "20,60", "-hold", "200ms", "-sources", "3")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, n := range []string{"20", "60"} {
		for _, kind := range []string{"twistd", "baseline"} {
			re := regexp.MustCompile(`(?m)^idle +server=` + kind + ` +clients=` + n + ` held=200ms all_reached=` + n + ` connect_time=\S+ logins_per_s=\d+ rss_idle=[0-9.]+MiB rss=[0-9.]+MiB rss_per_conn=-?[0-9.]+KiB$`)
			if !re.MatchString(out) {
				t.Errorf("no idle line for %s clients on %s:\n%s", n, kind, out)
			}
		}
		if !regexp.MustCompile(`(?m)^\| ` + n + ` \| [0-9.]+ MiB \| -?[0-9.]+ KiB \| [0-9.]+ MiB \| -?[0-9.]+ KiB \| (-?[0-9.]+|-) \|$`).MatchString(out) {
			t.Errorf("no table row for %s clients:\n%s", n, out)
		}
	}
}

// A hard descriptor limit below what the largest idle count needs is one
// line before any server starts, exit 1.
func TestIdleBeyondHardLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	code, out, errOut := runChatload(t, prlimit, "--nofile=600:600", chatload(t), "-scenario", "idle,broadcast", "-idle-counts", "100,5000")
	want := "chatload: hard limit on open files is 600; idle needs 5100 descriptors for 5000 clients (lower -idle-counts)\n"
	if code != 1 || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
}

// A server outlives no run: chatload killed while holding clients takes
// its server with it.
func TestServerDiesWithChatload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cmd := exec.Command(chatload(t), "-bin", testutil.Binary(t), "-scenario", "idle", "-idle-counts", "20", "-hold", "30s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("chatload started no server within 10 s")
		}
		child = childOf(cmd.Process.Pid)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	cmd.Process.Kill()
	<-done
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(child, 0) == nil && !zombie(child); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server %d still running 5 s after chatload was killed", child)
		}
	}
}

// childOf returns a child process of pid, 0 if none.
func childOf(pid int) int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, _ := strconv.Atoi(fs[0])
			return n
		}
	}
	return 0
}

// zombie reports whether pid has exited and waits for a reaper (init,
// once its parent is gone).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
