package ftplite

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// mtime is the modification time of name under the root.
func (ts *testServer) mtime(t *testing.T, name string) time.Time {
	t.Helper()
	fi, err := os.Stat(filepath.Join(ts.root, name))
	must(t, err)
	return fi.ModTime().UTC()
}

func atime(t *testing.T, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(p)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return time.Unix(st.Atim.Sec, st.Atim.Nsec).UTC()
}

// TestMfmt: MFMT sets the modification time (UTC) that MDTM, MLST and
// MLSD then show, answers "213 Modify=time; path", keeps the access
// time, and refuses bad times, directories, missing files and anything
// outside the root.
func TestMfmt(t *testing.T) {
	ts := newTestServer(t, nil)
	must(t, syscall.Mkfifo(filepath.Join(ts.root, "fifo"), 0o644))
	a := filepath.Join(ts.root, "sub/a.txt")
	oldAtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(t, os.Chtimes(a, oldAtime, time.Now()))

	c := dialCtrl(t, ts.addr)
	c.expect(530, "MFMT 20200102030405 sub/a.txt")
	c.login(testUser, testPassword)
	if feat := c.expect(211, "FEAT"); !strings.Contains(feat, "\n MFMT\n") {
		t.Errorf("FEAT lacks MFMT:\n%s", feat)
	}
	if help := c.expect(214, "HELP"); !strings.Contains(help, "MFMT") || !strings.Contains(help, "STOU") {
		t.Errorf("HELP lacks MFMT or STOU:\n%s", help)
	}

	if msg := c.expect(213, "MFMT 20200102030405 sub/a.txt"); msg != "Modify=20200102030405; sub/a.txt" {
		t.Errorf("MFMT reply %q", msg)
	}
	if got, want := ts.mtime(t, "sub/a.txt"), time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC); !got.Equal(want) {
		t.Errorf("mtime after MFMT: %v, want %v", got, want)
	}
	if got := atime(t, a); !got.Equal(oldAtime) {
		t.Errorf("MFMT changed the access time to %v", got)
	}
	if msg := c.expect(213, "MDTM sub/a.txt"); msg != "20200102030405" {
		t.Errorf("MDTM after MFMT: %q", msg)
	}
	if msg := c.expect(250, "MLST sub/a.txt"); !strings.Contains(msg, "modify=20200102030405;") {
		t.Errorf("MLST after MFMT: %q", msg)
	}
	if got := c.retrieve("MLSD sub"); !strings.Contains(got, "modify=20200102030405;") || !strings.Contains(got, "; a.txt\r\n") {
		t.Errorf("MLSD after MFMT:\n%s", got)
	}

	// Fractions of a second, a leap second, a path relative to the current
	// directory with a space in it, a link inside the root.
	c.expect(213, "MFMT 19991231235958.25 sub/a.txt")
	if got, want := ts.mtime(t, "sub/a.txt"), time.Date(1999, 12, 31, 23, 59, 58, 250e6, time.UTC); !got.Equal(want) {
		t.Errorf("mtime after MFMT with a fraction: %v, want %v", got, want)
	}
	c.expect(213, "MFMT 20161231235960 sub/a.txt")
	if msg := c.expect(213, "MDTM sub/a.txt"); msg != "20170101000000" {
		t.Errorf("MDTM after a leap second: %q", msg)
	}
	c.expect(250, "CWD with space")
	if msg := c.expect(213, "MFMT 20100101000000 file one.txt"); msg != "Modify=20100101000000; file one.txt" {
		t.Errorf("MFMT reply %q", msg)
	}
	if got := ts.mtime(t, "with space/file one.txt"); !got.Equal(time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("relative MFMT: mtime %v", got)
	}
	c.expect(250, "CWD /")
	c.expect(213, "MFMT 20110101000000 inlink/a.txt")
	set := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := ts.mtime(t, "sub/a.txt"); !got.Equal(set) {
		t.Errorf("MFMT through a link inside the root: mtime %v", got)
	}

	// Bad times: 501 naming the problem, nothing changed.
	for _, bad := range []struct{ line, says string }{
		{"MFMT 2020010203040 sub/a.txt", "14 digits"},
		{"MFMT 2020010203040x sub/a.txt", "14 digits"},
		{"MFMT 202001020304050 sub/a.txt", "14 digits"},
		{"MFMT 09990101000000 sub/a.txt", "year"},
		{"MFMT 20201301000000 sub/a.txt", "month"},
		{"MFMT 20200001000000 sub/a.txt", "month"},
		{"MFMT 20210229000000 sub/a.txt", "day"},
		{"MFMT 20200100000000 sub/a.txt", "day"},
		{"MFMT 20200101240000 sub/a.txt", "hour"},
		{"MFMT 20200101006000 sub/a.txt", "minute"},
		{"MFMT 20200101000061 sub/a.txt", "second"},
		{"MFMT 20200101000000. sub/a.txt", "after the dot"},
		{"MFMT 20200101000000.1a sub/a.txt", "after the dot"},
		{"MFMT 20200101000000", "Usage"},
		{"MFMT sub/a.txt", "Usage"},
		{"MFMT", "Syntax"},
	} {
		if msg := c.expect(501, bad.line); !strings.Contains(msg, bad.says) {
			t.Errorf("%q: 501 %q does not say %q", bad.line, msg, bad.says)
		}
	}
	if got := ts.mtime(t, "sub/a.txt"); !got.Equal(set) {
		t.Errorf("a refused MFMT changed the mtime to %v", got)
	}

	// Directories, missing files, special files and ways out: 550.
	emptyBefore := ts.mtime(t, "empty")
	for _, name := range []string{
		"nope.txt", "sub", "/", "empty", "fifo", "secretlink", "escape/secret.txt", "abs/secret.txt",
		"../../outside/secret.txt", "sub/back/outside/secret.txt", "etc/hostname", "etc",
	} {
		if code, msg := c.cmd("MFMT 20000101000000 " + name); code != 550 {
			t.Errorf("MFMT %s: %d %s", name, code, msg)
		}
	}
	if got := ts.mtime(t, "empty"); !got.Equal(emptyBefore) {
		t.Errorf("MFMT changed a directory's mtime")
	}
	c.expect(553, "MFMT 20000101000000 a\x1bb")
	c.expect(200, "NOOP")

	// Anonymous sessions may not change files, even under --anonymous-write
	// (TestStouRefusals); the server's cleanup checks outside.
	anon := dialCtrl(t, ts.addr)
	anon.login("anonymous", "x@")
	anon.expect(550, "MFMT 20000101000000 sub/a.txt")
	if got := ts.mtime(t, "sub/a.txt"); !got.Equal(set) {
		t.Errorf("anonymous MFMT changed the mtime to %v", got)
	}
}

// TestMfmtSymlinkSwap: a name that keeps switching between a plain file
// and a link to a file outside the root never gets MFMT to change the
// outside file. A check by name followed by a change by name (os.Chtimes
// on the joined path) fails this within a few hundred tries.
func TestMfmtSymlinkSwap(t *testing.T) {
	ts := newTestServer(t, nil)
	secret := filepath.Join(ts.outside, "secret.txt")
	fi, err := os.Stat(secret)
	must(t, err)
	before := fi.ModTime()
	race, swap := filepath.Join(ts.root, "race"), filepath.Join(ts.root, "swap")
	must(t, os.WriteFile(race, nil, 0o644))
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				os.Symlink(secret, swap)
			} else {
				os.WriteFile(swap, nil, 0o644)
			}
			os.Rename(swap, race)
		}
	}()
	defer func() { close(stop); <-done }()

	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	codes := map[int]int{}
	for range 2000 {
		code, msg := c.cmd("MFMT 20000101000000 race")
		if code != 213 && code != 550 {
			t.Fatalf("MFMT during swaps: %d %s", code, msg)
		}
		codes[code]++
	}
	t.Logf("replies: %v", codes)
	if fi, err := os.Stat(secret); err != nil || !fi.ModTime().Equal(before) {
		t.Fatalf("the file outside the root changed: %v %v", fi.ModTime(), err)
	}
}

// TestCurlMfmt: curl -Q "MFMT …" sets the time, curl -R then gives the
// download that time (from MDTM), and a refused MFMT is curl's quote
// error (21).
func TestCurlMfmt(t *testing.T) {
	ts := newTestServer(t, nil)
	user := "ftp://" + testUser + ":" + strings.ReplaceAll(testPassword, " ", "%20") + "@127.0.0.1:" + strconv.Itoa(ts.port)
	out := filepath.Join(t.TempDir(), "out")
	want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if code, o := curl(t, "-Q", "MFMT 20010203040506 sub/a.txt", "-o", out, user+"/sub/a.txt"); code != 0 {
		t.Fatalf("curl -Q MFMT: exit %d\n%s\n%s", code, o, ts.logs)
	}
	if got := ts.mtime(t, "sub/a.txt"); !got.Equal(want) {
		t.Fatalf("mtime after curl -Q MFMT: %v", got)
	}
	if code, o := curl(t, "-R", "-o", out, user+"/sub/a.txt"); code != 0 {
		t.Fatalf("curl -R: exit %d\n%s", code, o)
	}
	if fi, err := os.Stat(out); err != nil || !fi.ModTime().Equal(want) {
		t.Fatalf("curl -R gave the download %v, want %v (%v)", fi.ModTime(), want, err)
	}
	for _, q := range []string{"MFMT 2001 sub/a.txt", "MFMT 20010203040506 nope.txt", "MFMT 20010203040506 secretlink"} {
		if code, o := curl(t, "-Q", q, "-o", out, user+"/sub/a.txt"); code != 21 {
			t.Errorf("curl -Q %q: exit %d, want 21\n%s", q, code, o)
		}
	}
	if got := ts.mtime(t, "sub/a.txt"); !got.Equal(want) {
		t.Fatalf("mtime after refused MFMTs: %v", got)
	}
}

// TestLftpMirrorTimes: lftp's mirror -R sends MFMT once FEAT offers it,
// so the uploaded tree keeps the local modification times.
func TestLftpMirrorTimes(t *testing.T) {
	ts := newTestServer(t, nil)
	dir := t.TempDir()
	local := filepath.Join(dir, "local")
	must(t, os.MkdirAll(filepath.Join(local, "d"), 0o755))
	times := map[string]time.Time{
		"one.txt":   time.Date(2005, 6, 7, 8, 9, 10, 0, time.UTC),
		"d/two.txt": time.Date(2012, 12, 21, 12, 0, 0, 0, time.UTC),
	}
	for name, mt := range times {
		p := filepath.Join(local, name)
		must(t, os.WriteFile(p, []byte(name), 0o644))
		must(t, os.Chtimes(p, mt, mt))
	}
	openUser := "set ftp:ssl-allow no; open -u " + testUser + ",'" + testPassword + "' ftp://127.0.0.1:" + strconv.Itoa(ts.port) + "; "
	out := lftpRun(t, dir, openUser+"mirror -R local /up/m")
	if !strings.Contains(out, "---> MFMT ") {
		t.Errorf("lftp sent no MFMT:\n%s", out)
	}
	for name, mt := range times {
		if got := ts.mtime(t, "up/m/"+name); !got.Equal(mt) {
			t.Errorf("%s: mtime %v after mirror -R, want %v", name, got, mt)
		}
	}
}

const pyStou = `
import ftplib, sys, os, io, calendar
host, port, root, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

class FTP(ftplib.FTP):
    """Keeps every reply, for the 150 that names the STOU file."""
    replies = []
    def getresp(self):
        r = super().getresp()
        self.replies.append(r)
        return r

def stou(f, cmd, data):
    f.replies.clear()
    final = f.storbinary(cmd, io.BytesIO(data))
    assert final.startswith("226"), final
    pre = [r for r in f.replies if r.startswith("1")]
    assert len(pre) == 1 and pre[0].startswith("150 FILE: "), f.replies
    return pre[0][len("150 FILE: "):]

f = FTP()
f.connect(host, port, timeout=20)
f.login(user, password)
payload = os.urandom(300000)
names = [stou(f, "STOU", payload), stou(f, "STOU", payload), stou(f, "STOU report.txt", payload)]
assert len(set(names)) == 3, names
for n in names:
    assert "/" not in n, n
    assert open(os.path.join(root, n), "rb").read() == payload, n
assert names[0].startswith("upload.") and names[2].startswith("report.txt."), names

# The name is relative to the current directory, where the file goes;
# of a hint only the last component counts.
f.cwd("up")
n = stou(f, "STOU", b"in up")
assert open(os.path.join(root, "up", n), "rb").read() == b"in up"
n = stou(f, "STOU /sub/hint.bin", b"hinted")
assert n.startswith("hint.bin."), n
assert open(os.path.join(root, "up", n), "rb").read() == b"hinted"
assert not os.path.exists(os.path.join(root, "sub", n))

# MFMT as FileZilla uses it, then MDTM and MLSD agree.
f.cwd("/")
r = f.sendcmd("MFMT 20200102030405 " + names[0])
assert r == "213 Modify=20200102030405; " + names[0], r
assert f.sendcmd("MDTM " + names[0]) == "213 20200102030405"
assert dict(f.mlsd())[names[0]]["modify"] == "20200102030405"
assert int(os.stat(os.path.join(root, names[0])).st_mtime) == calendar.timegm((2020, 1, 2, 3, 4, 5))
try:
    f.sendcmd("MFMT 20201302030405 " + names[0]); raise SystemExit("bad month accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("501") and "month" in str(e), e
f.quit()
print("OK")
`

// TestFtplibStou: python's ftplib stores with STOU twice and with a hint;
// each 150 reply names a new file holding the whole upload; MFMT, MDTM
// and MLSD agree.
func TestFtplibStou(t *testing.T) {
	ts := newTestServer(t, nil)
	python(t, ts, "127.0.0.1", pyStou, testUser, testPassword)
	for _, dir := range []string{".", "up"} {
		if tmp, _ := filepath.Glob(filepath.Join(ts.root, dir, ".*.ftp-upload-*")); len(tmp) > 0 {
			t.Errorf("temporary files left: %v", tmp)
		}
	}
}

// names lists a directory under the root.
func (ts *testServer) names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(ts.root, dir))
	must(t, err)
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

// TestStouInterrupted: a STOU cut by a reset of the data connection or
// by ABOR leaves nothing in the directory: neither the name the 150
// reply gave nor the temporary file.
func TestStouInterrupted(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")
	c.expect(250, "CWD up")
	for _, how := range []string{"reset", "abort"} {
		before := ts.names(t, "up")
		d := c.epsv()
		msg := c.expect(150, "STOU")
		name, ok := strings.CutPrefix(msg, "FILE: ")
		if !ok || name == "" {
			t.Fatalf("STOU preliminary reply %q", msg)
		}
		c.cutUpload(d, how)
		if after := ts.names(t, "up"); !slices.Equal(before, after) {
			t.Fatalf("%s: the directory went from %v to %v", how, before, after)
		}
		if _, err := os.Lstat(filepath.Join(ts.root, "up", name)); err == nil {
			t.Fatalf("%s: %s exists", how, name)
		}
		c.expect(200, "NOOP")
	}
	// A complete one afterwards works.
	if code := c.store("STOU", []byte("whole")); code != 226 {
		t.Fatalf("STOU after the interrupted ones: %d", code)
	}
}

// TestStouNeverOverwrites forces name collisions through the injected
// random part: STOU skips a name that exists, fails rather than replace a
// file that took its name during the upload, and gives up with 450 when
// every name it tries is taken.
func TestStouNeverOverwrites(t *testing.T) {
	suffixes := []uint32{0xaaaa, 0xaaaa, 0xbbbb, 0xcccc}
	var calls atomic.Int64
	ts := newTestServer(t, func(c *Config) {
		c.uniqueSuffix = func() uint32 { return suffixes[min(int(calls.Add(1))-1, len(suffixes)-1)] }
	})
	must(t, os.WriteFile(filepath.Join(ts.root, "upload.0000aaaa"), []byte("precious a"), 0o644))
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")

	// upload.0000aaaa exists: two tries, then upload.0000bbbb.
	d := c.epsv()
	if msg := c.expect(150, "STOU"); msg != "FILE: upload.0000bbbb" {
		t.Fatalf("STOU beside upload.0000aaaa: 150 %s", msg)
	}
	d.Write([]byte("new b"))
	d.Close()
	if code, msg := c.read(); code != 226 {
		t.Fatalf("STOU: %d %s", code, msg)
	}
	if ts.read(t, "upload.0000aaaa") != "precious a" || ts.read(t, "upload.0000bbbb") != "new b" {
		t.Fatal("STOU wrote to the wrong file")
	}

	// upload.0000cccc appears while the upload runs: the upload is
	// discarded and that file kept.
	d = c.epsv()
	if msg := c.expect(150, "STOU"); msg != "FILE: upload.0000cccc" {
		t.Fatalf("STOU: 150 %s", msg)
	}
	must(t, os.WriteFile(filepath.Join(ts.root, "upload.0000cccc"), []byte("precious c"), 0o644))
	d.Write([]byte("new c"))
	d.Close()
	if code, msg := c.read(); code != 550 {
		t.Fatalf("STOU onto a name taken meanwhile: %d %s", code, msg)
	}
	if got := ts.read(t, "upload.0000cccc"); got != "precious c" {
		t.Fatalf("STOU replaced a file that took its name: %q", got)
	}
	if tmp, _ := filepath.Glob(filepath.Join(ts.root, ".*.ftp-upload-*")); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}

	// Every further try gives upload.0000cccc: 450 after a bounded number.
	n := calls.Load()
	c.epsv()
	c.expect(450, "STOU")
	if tries := calls.Load() - n; tries != stouTries {
		t.Errorf("STOU tried %d names, want %d", tries, stouTries)
	}
	c.expect(200, "NOOP")
}

// TestStouRefusals: STOU is refused as STOR is (before login, anonymous
// read-only) and allowed for anonymous under --anonymous-write, since it
// never replaces a file; REST does not apply to it; hints with control
// characters are refused; MFMT stays refused for anonymous users.
func TestStouRefusals(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.expect(530, "STOU")
	c.login("anonymous", "x@")
	c.epsv()
	c.expect(550, "STOU")
	c.expect(550, "STOU x")
	c.login(testUser, testPassword)
	c.expect(350, "REST 5")
	c.expect(503, "STOU")
	c.epsv()
	c.expect(553, "STOU a\x1bb")
	c.expect(200, "NOOP")
	if got := ts.names(t, "."); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "upload.") || strings.HasPrefix(n, "x.") }) {
		t.Fatalf("a refused STOU created a file: %v", got)
	}

	ts = newTestServer(t, func(c *Config) { c.AnonWrite = true })
	c = dialCtrl(t, ts.addr)
	c.login("ftp", "x@")
	c.expect(200, "TYPE I")
	c.expect(250, "CWD up")
	d := c.epsv()
	msg := c.expect(150, "STOU")
	d.Write([]byte("anonymous"))
	d.Close()
	if code, m := c.read(); code != 226 {
		t.Fatalf("anonymous STOU under --anonymous-write: %d %s", code, m)
	}
	name, _ := strings.CutPrefix(msg, "FILE: ")
	if got := ts.read(t, "up/"+name); got != "anonymous" {
		t.Fatalf("anonymous STOU stored %q", got)
	}
	c.expect(550, "MFMT 20000101000000 "+name)
}
