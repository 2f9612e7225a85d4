package ftplite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const noSpaceChild = "FTPLITE_NOSPACE_CHILD"

// TestStorNoSpace fills a 256 KiB tmpfs under the root with uploads: each
// is answered 452, leaves nothing under its final name or as a temporary
// file, and an old file being replaced keeps its content. The mount is
// made in a private mount namespace (the test re-runs itself under
// unshare -m), so it vanishes with that process whatever happens.
func TestStorNoSpace(t *testing.T) {
	if os.Getenv(noSpaceChild) == "" {
		reexecInMountNamespace(t, "TestStorNoSpace")
		return
	}
	ts := newTestServer(t, nil)
	small := filepath.Join(ts.root, "small")
	must(t, os.Mkdir(small, 0o755))
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=256k,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	old := []byte("old content, to be kept\n")
	must(t, os.WriteFile(filepath.Join(small, "old.txt"), old, 0o644))

	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, four times the space
	for _, name := range []string{"small/new.bin", "small/old.txt"} {
		d := c.epsv()
		c.expect(150, "STOR "+name)
		// The server stops reading when the disk is full; the writer's
		// error is expected.
		go func() { d.Write(big); d.Close() }()
		if code, msg := c.read(); code != 452 {
			t.Errorf("STOR %s on a full disk: %d %s, want 452", name, code, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(small, "new.bin")); err == nil {
		t.Error("a partial file stayed under the final name new.bin")
	}
	if got, _ := os.ReadFile(filepath.Join(small, "old.txt")); !bytes.Equal(got, old) {
		t.Errorf("old.txt changed: %q", got)
	}
	if tmp, _ := filepath.Glob(filepath.Join(small, ".*.ftp-upload-*")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	// The session goes on, and with space back uploads work.
	must(t, os.Remove(filepath.Join(small, "old.txt")))
	if code := c.store("STOR small/fits.txt", []byte("fits\n")); code != 226 {
		t.Errorf("STOR after the failures: %d", code)
	}
	c.expect(221, "QUIT")
}

// reexecInMountNamespace runs test again in a child process under
// "unshare -m --propagation private" with noSpaceChild set, and reports
// its result: passed, skipped (with the child's reason) or failed.
func reexecInMountNamespace(t *testing.T, test string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small file system in a private mount namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not installed (Debian package util-linux)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-m", "--propagation", "private",
		os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noSpaceChild+"=1")
	out, err := cmd.CombinedOutput()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the child test timed out:\n%s", out)
	case err != nil && bytes.Contains(out, []byte("unshare failed")):
		t.Skipf("no private mount namespace: %s", out)
	case err != nil:
		t.Fatalf("in a private mount namespace: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP")):
		t.Skip(lastLines(string(out), 3))
	}
	t.Log(lastLines(string(out), 4))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return fmt.Sprint(strings.Join(lines[max(0, len(lines)-n):], "\n"))
}

// TestSpaceReply pins the codes for the storage errors a tmpfs cannot
// produce here: a quota (EDQUOT) and the file-size limit (EFBIG) are 552,
// as wrapped by the os package; anything else is no storage error.
func TestSpaceReply(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{&os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}, 452},
		{&os.PathError{Op: "write", Path: "f", Err: syscall.EDQUOT}, 552},
		{os.NewSyscallError("splice", syscall.EFBIG), 552},
		{&os.PathError{Op: "write", Path: "f", Err: syscall.EIO}, 0},
		{syscall.ECONNRESET, 0},
	} {
		if code, _ := spaceReply(tc.err); code != tc.code {
			t.Errorf("%v: %d, want %d", tc.err, code, tc.code)
		}
	}
}
