package ftplite

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// python runs a python3 ftplib script with the server's host, port and
// root as arguments; the script asserts and prints OK at the end.
func python(t *testing.T, ts *testServer, host, script string, extra ...string) string {
	t.Helper()
	py := needTool(t, "python3")
	f := filepath.Join(t.TempDir(), "client.py")
	must(t, os.WriteFile(f, []byte(script), 0o644))
	args := append([]string{f, host, strconv.Itoa(ts.port), ts.root}, extra...)
	code, out := run(t, "", py, args...)
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "OK") {
		t.Fatalf("python3 ftplib failed (exit %d):\n%s\nserver log:\n%s", code, out, ts.logs)
	}
	return out
}

const pyAnonymous = `
import ftplib, sys, os, hashlib, datetime, socket
host, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = ftplib.FTP()
f.connect(host, port, timeout=20)
for user in ("anonymous", "ftp"):
    assert f.login(user, "anonymous@").startswith("230")
assert f.pwd() == "/"
f.cwd("sub"); assert f.pwd() == "/sub"
f.cwd(".."); assert f.pwd() == "/"
f.cwd(".."); assert f.pwd() == "/", "CWD .. at the root stays there"
f.sendcmd("CDUP"); assert f.pwd() == "/"

names = f.nlst()
for n in ("sub", "zwei ü.txt", "with space", "big.bin", "empty"):
    assert n in names, (n, names)
assert f.nlst("empty") == []
assert sorted(f.nlst("sub")) == ["sub/a.txt", "sub/back", "sub/nested"] or sorted(f.nlst("sub")) == ["sub/a.txt", "sub/nested"], f.nlst("sub")

lines = []
f.retrlines("LIST", lines.append)
byname = {}
for l in lines:
    parts = l.split(None, 8)
    assert len(parts) == 9 and parts[0][0] in "d-" and len(parts[0]) == 10, l
    byname[parts[8]] = parts
assert byname["big.bin"][4] == str(os.path.getsize(os.path.join(root, "big.bin")))
assert byname["sub"][0].startswith("d")
assert "zwei ü.txt" in byname and "with space" in byname
lines = []
f.retrlines("LIST -la sub", lines.append)
assert any(l.endswith(" a.txt") for l in lines), lines

facts = dict(f.mlsd())
assert facts["sub"]["type"] == "dir" and facts["sub"]["perm"] == "el", facts["sub"]
st = os.stat(os.path.join(root, "big.bin"))
assert facts["big.bin"]["type"] == "file" and facts["big.bin"]["size"] == str(st.st_size)
assert facts["big.bin"]["perm"] == "r"
want = datetime.datetime.fromtimestamp(int(st.st_mtime), datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
assert facts["big.bin"]["modify"] == want, (facts["big.bin"]["modify"], want)
assert "zwei ü.txt" in facts
assert f.sendcmd("MLST big.bin").startswith("250-")

data = bytearray()
f.retrbinary("RETR big.bin", data.extend)
assert hashlib.sha256(data).digest() == hashlib.sha256(open(os.path.join(root, "big.bin"), "rb").read()).digest()
tail = bytearray()
f.retrbinary("RETR big.bin", tail.extend, rest=5000)
assert bytes(tail) == bytes(data[5000:])
try:
    f.retrbinary("RETR big.bin", tail.extend, rest=len(data) + 1)
    raise SystemExit("REST beyond the end accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("554"), e
assert f.size("big.bin") == len(data)
assert f.sendcmd("MDTM big.bin") == "213 " + want

# TYPE A: LF on disk, CRLF on the wire, the same text after ftplib.
text = []
f.retrlines("RETR text.txt", text.append)
assert text == open(os.path.join(root, "text.txt")).read().splitlines(), text
f.sendcmd("TYPE A")
conn = f.transfercmd("RETR text.txt")
wire = b""
while True:
    b = conn.recv(4096)
    if not b: break
    wire += b
conn.close(); f.voidresp()
assert wire == b"line one\r\nline two\r\nline three\r\n", wire

# Anonymous may not write.
import io
for op in (lambda: f.storbinary("STOR new.txt", io.BytesIO(b"x")),
           lambda: f.mkd("newdir"), lambda: f.delete("sub/a.txt"),
           lambda: f.rename("sub/a.txt", "moved.txt"), lambda: f.rmd("empty"),
           lambda: f.storbinary("APPE keep.txt", io.BytesIO(b"x"))):
    try:
        op(); raise SystemExit("anonymous write accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), e

# ABOR during a download ftplib does not read: urgent "ABOR\r\n".
f.voidcmd("TYPE I")
conn = f.transfercmd("RETR huge.bin")
conn.recv(65536)
resp = f.abort()
assert resp[:3] in ("426", "225", "226"), resp
if resp.startswith("426"):
    assert f.getresp().startswith("226")
conn.close()
assert f.voidcmd("NOOP").startswith("200")
f.quit()
print("OK")
`

func TestFtplibAnonymous(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.randomFile(t, "big.bin", 10<<20)
	ts.sparseFile(t, "huge.bin", 256<<20)
	python(t, ts, "127.0.0.1", pyAnonymous)
	for _, name := range []string{"new.txt", "newdir", "moved.txt"} {
		if _, err := os.Lstat(filepath.Join(ts.root, name)); err == nil {
			t.Errorf("anonymous created %s", name)
		}
	}
	if ts.read(t, "sub/a.txt") != "hello\n" || ts.read(t, "keep.txt") != "old content\n" {
		t.Error("anonymous changed a file")
	}
}

const pyUser = `
import ftplib, sys, os, io, time
host, port, root, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
f = ftplib.FTP()
f.connect(host, port, timeout=20)
f.login(user, password)
payload = os.urandom(300000)
f.storbinary("STOR up/u.bin", io.BytesIO(payload))
assert f.size("up/u.bin") == len(payload)
m = f.sendcmd("MDTM up/u.bin")
assert m.startswith("213 " + time.strftime("%Y", time.gmtime())), m
f.storbinary("APPE up/u.bin", io.BytesIO(b"appended"))
assert open(os.path.join(root, "up/u.bin"), "rb").read() == payload + b"appended"
f.storbinary("STOR up/u.bin", io.BytesIO(b"XYZ"), rest=10)
assert open(os.path.join(root, "up/u.bin"), "rb").read() == payload[:10] + b"XYZ" + payload[13:] + b"appended"
f.storlines("STOR up/lines.txt", io.BytesIO(b"one\r\ntwo\r\n"))
assert open(os.path.join(root, "up/lines.txt"), "rb").read() == b"one\ntwo\n"
f.rename("up/u.bin", "up/v.bin")
assert os.path.exists(os.path.join(root, "up/v.bin")) and not os.path.exists(os.path.join(root, "up/u.bin"))
f.delete("up/v.bin")
assert not os.path.exists(os.path.join(root, "up/v.bin"))
assert f.mkd("up/d") == "/up/d"
f.cwd("up/d"); assert f.pwd() == "/up/d"; f.cwd("/")
f.rmd("up/d")
assert not os.path.exists(os.path.join(root, "up/d"))
assert dict(f.mlsd("up"))["lines.txt"]["perm"] == "adfrw"
f.sendcmd("SITE CHMOD 600 up/lines.txt")
assert os.stat(os.path.join(root, "up/lines.txt")).st_mode & 0o777 == 0o600
try:
    f.sendcmd("RNTO x"); raise SystemExit("RNTO without RNFR accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("503"), e
# Active mode.
f.set_pasv(False)
data = bytearray(); f.retrbinary("RETR sub/a.txt", data.extend)
assert data == b"hello\n"
f.quit()

# Wrong passwords: 530 after a growing delay; the third closes the session.
g = ftplib.FTP(); g.connect(host, port, timeout=20)
delays = []
for i in range(3):
    t0 = time.monotonic()
    try:
        g.login(user, "wrong"); raise SystemExit("wrong password accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("530"), e
    delays.append(time.monotonic() - t0)
assert delays[0] >= 0.04 and delays[1] > delays[0] and delays[2] > delays[1], delays
try:
    g.voidcmd("NOOP"); raise SystemExit("session still open")
except (ftplib.error_temp, EOFError) as e:
    assert "421" in str(e) or isinstance(e, EOFError), e
print("OK")
`

func TestFtplibUser(t *testing.T) {
	ts := newTestServer(t, nil)
	python(t, ts, "127.0.0.1", pyUser, testUser, testPassword)
	ts.waitLog(t, "failed login")
	ts.waitLog(t, "peer=127.0.0.1")
}

const pyIPv6 = `
import ftplib, sys
host, port = sys.argv[1], int(sys.argv[2])
for pasv in (True, False):
    f = ftplib.FTP(); f.connect(host, port, timeout=20); f.login()
    f.set_pasv(pasv)
    data = bytearray(); f.retrbinary("RETR sub/a.txt", data.extend)
    assert data == b"hello\n", data
    f.quit()
print("OK")
`

func TestFtplibIPv6(t *testing.T) {
	ts := newTestServerOn(t, "::1", nil)
	python(t, ts, "::1", pyIPv6)
	ts.waitLog(t, "path=/sub/a.txt")
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	c.expect(425, "PASV")
	c.expect(522, "EPSV 1")
	c.expect(229, "EPSV 2")
}

const pyTLS = `
import ftplib, sys, ssl, io, os
host, port, root, user, password, cafile = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
f = ftplib.FTP_TLS(context=ctx)
f.connect(host, int(port), timeout=20)
f.auth()
f.login(user, password)
f.prot_p()
payload = os.urandom(200000)
f.storbinary("STOR up/tls.bin", io.BytesIO(payload))
data = bytearray(); f.retrbinary("RETR up/tls.bin", data.extend)
assert bytes(data) == payload
names = f.nlst("up")
assert "up/tls.bin" in names, names
f.quit()
print("OK")
`

func TestFtplibTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	ts := newTestServer(t, func(c *Config) { c.TLSCert, c.TLSKey, c.TLSRequired = cert, key, true })
	python(t, ts, "127.0.0.1", pyTLS, testUser, testPassword, cert)

	// --tls-required: no login and no clear data before TLS.
	c := dialCtrl(t, ts.addr)
	c.expect(530, "USER "+testUser)
	c.expect(503, "PBSZ 0")
}

// curl runs curl against the server and returns its exit code and output.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return run(t, "", needTool(t, "curl"), append([]string{"-sS", "--max-time", "30"}, args...)...)
}

func TestCurl(t *testing.T) {
	ts := newTestServer(t, nil)
	big := ts.randomFile(t, "big.bin", 3<<20)
	base := "ftp://127.0.0.1:" + strconv.Itoa(ts.port)
	user := base[:6] + testUser + ":" + strings.ReplaceAll(testPassword, " ", "%20") + "@" + base[6:]
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	local := filepath.Join(dir, "local.bin")
	must(t, os.WriteFile(local, big, 0o644))

	check := func(what string, code int, output string, wantCode int) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("%s: curl exit %d, want %d\n%s\nserver log:\n%s", what, code, wantCode, output, ts.logs)
		}
	}
	sameFile := func(what, path string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(path)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes differ from the %d expected", what, len(got), len(want))
		}
	}

	code, listing := curl(t, base+"/")
	check("list", code, listing, 0)
	if !strings.Contains(listing, " big.bin") || !strings.Contains(listing, " zwei ü.txt") || strings.Contains(listing, "escape") {
		t.Fatalf("listing:\n%s", listing)
	}
	for _, mode := range [][]string{nil, {"--disable-epsv"}, {"--ftp-port", "127.0.0.1"}, {"--ftp-port", "127.0.0.1", "--disable-eprt"}, {"--ftp-method", "nocwd"}} {
		code, o := curl(t, append(mode, "-o", out, base+"/big.bin")...)
		check("download "+strings.Join(mode, " "), code, o, 0)
		sameFile("download "+strings.Join(mode, " "), out, big)
	}
	// Resumed download of a half-downloaded file.
	must(t, os.WriteFile(out, big[:1<<20], 0o644))
	code, o := curl(t, "-C", "-", "-o", out, base+"/big.bin")
	check("resume download", code, o, 0)
	sameFile("resume download", out, big)

	code, o = curl(t, "-T", local, user+"/up/u.bin")
	check("upload", code, o, 0)
	sameFile("upload", filepath.Join(ts.root, "up/u.bin"), big)
	// Resume an upload cut short: curl asks SIZE and APPEnds the rest.
	must(t, os.Truncate(filepath.Join(ts.root, "up/u.bin"), 1<<20))
	code, o = curl(t, "-C", "-", "-T", local, user+"/up/u.bin")
	check("resume upload", code, o, 0)
	sameFile("resume upload", filepath.Join(ts.root, "up/u.bin"), big)
	code, o = curl(t, "--append", "-T", local, user+"/up/u.bin")
	check("append", code, o, 0)
	sameFile("append", filepath.Join(ts.root, "up/u.bin"), append(append([]byte{}, big...), big...))
	code, o = curl(t, "--ftp-create-dirs", "-T", local, user+"/up/new/nested/x.bin")
	check("create dirs", code, o, 0)
	sameFile("create dirs", filepath.Join(ts.root, "up/new/nested/x.bin"), big)

	code, o = curl(t, "-l", base+"/sub/")
	check("NLST", code, o, 0)
	if !strings.Contains(o, "a.txt") || strings.Contains(o, "drw") {
		t.Fatalf("curl -l: %q", o)
	}
	code, o = curl(t, "-I", base+"/big.bin")
	check("-I", code, o, 0)
	if !strings.Contains(o, "Content-Length: "+strconv.Itoa(len(big))) || !strings.Contains(o, "Last-Modified:") {
		t.Fatalf("curl -I: %q", o)
	}
	code, o = curl(t, "-X", "MLSD", base+"/sub/")
	check("MLSD", code, o, 0)
	if !strings.Contains(o, "type=file;size=6;") || !strings.Contains(o, "; a.txt") {
		t.Fatalf("curl -X MLSD: %q", o)
	}
	code, o = curl(t, "-Q", "DELE up/new/nested/x.bin", user+"/sub/a.txt")
	check("-Q DELE", code, o, 0)
	if _, err := os.Stat(filepath.Join(ts.root, "up/new/nested/x.bin")); err == nil {
		t.Fatal("-Q DELE left the file")
	}

	// Exit codes measured against vsftpd.
	for _, c := range []struct {
		what string
		args []string
		want int
	}{
		{"missing file", []string{base + "/nope.bin"}, 78},
		{"anonymous upload", []string{"-T", local, base + "/up/anon.bin"}, 25},
		{"bad login", []string{"ftp://" + testUser + ":wrong@127.0.0.1:" + strconv.Itoa(ts.port) + "/"}, 67},
		{"missing directory", []string{base + "/nodir/x.bin"}, 9},
		{"TLS not offered", []string{"--ssl-reqd", base + "/sub/a.txt"}, 64},
	} {
		code, o := curl(t, append([]string{"-o", out}, c.args...)...)
		check(c.what, code, o, c.want)
	}
}

func TestCurlTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	ts := newTestServer(t, func(c *Config) { c.TLSCert, c.TLSKey, c.TLSRequired = cert, key, true })
	big := ts.randomFile(t, "big.bin", 1<<20)
	url := "ftp://" + testUser + ":" + strings.ReplaceAll(testPassword, " ", "%20") + "@127.0.0.1:" + strconv.Itoa(ts.port)
	out := filepath.Join(dir, "out")
	code, o := curl(t, "--ssl-reqd", "--cacert", cert, "-o", out, url+"/big.bin")
	if code != 0 {
		t.Fatalf("FTPS download: exit %d %s\n%s", code, o, ts.logs)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, big) {
		t.Fatal("FTPS download differs")
	}
	code, o = curl(t, "--ssl-reqd", "--cacert", cert, "-T", out, url+"/up/tls.bin")
	if code != 0 {
		t.Fatalf("FTPS upload: exit %d %s\n%s", code, o, ts.logs)
	}
	if !bytes.Equal([]byte(ts.read(t, "up/tls.bin")), big) {
		t.Fatal("FTPS upload differs")
	}
	// Without TLS the server refuses the login (curl 67).
	if code, o := curl(t, "-o", out, url+"/big.bin"); code != 67 {
		t.Fatalf("clear login with --tls-required: exit %d %s", code, o)
	}
}

// lftpRun runs an lftp script with debug output and returns it.
func lftpRun(t *testing.T, dir, script string) string {
	t.Helper()
	lftp := needTool(t, "lftp")
	cmd := exec.Command(lftp, "-d", "-c", "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; "+script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("lftp timed out:\n%s", out)
	}
	if err != nil {
		t.Fatalf("lftp: %v\n%s", err, out)
	}
	return string(out)
}

// sameTree compares two directory trees byte for byte.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	read := func(root string) map[string]string {
		m := map[string]string{}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			must(t, err)
			rel, _ := filepath.Rel(root, p)
			if fi.IsDir() {
				m[rel] = "dir"
			} else {
				b, err := os.ReadFile(p)
				must(t, err)
				m[rel] = string(b)
			}
			return nil
		})
		return m
	}
	ma, mb := read(a), read(b)
	for k, v := range ma {
		if mb[k] != v {
			t.Errorf("%s differs between %s and %s", k, a, b)
		}
	}
	if len(ma) != len(mb) {
		t.Errorf("%s has %d entries, %s has %d", a, len(ma), b, len(mb))
	}
}

func TestLftpMirror(t *testing.T) {
	ts := newTestServer(t, nil)
	dir := t.TempDir()
	open := "set ftp:ssl-allow no; open -u anonymous,x@ ftp://127.0.0.1:" + strconv.Itoa(ts.port) + "; "
	out := lftpRun(t, dir, open+"mirror /tree down")
	sameTree(t, filepath.Join(ts.root, "tree"), filepath.Join(dir, "down"))
	if !strings.Contains(out, "---> MLSD") {
		t.Errorf("lftp did not use MLSD:\n%s", out)
	}
	openUser := "set ftp:ssl-allow no; open -u " + testUser + ",'" + testPassword + "' ftp://127.0.0.1:" + strconv.Itoa(ts.port) + "; "
	lftpRun(t, dir, openUser+"mirror -R down /up/tree")
	sameTree(t, filepath.Join(dir, "down"), filepath.Join(ts.root, "up/tree"))
}

func TestLftpTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	ts := newTestServer(t, func(c *Config) { c.TLSCert, c.TLSKey, c.TLSRequired = cert, key, true })
	open := "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file " + cert +
		"; open -u " + testUser + ",'" + testPassword + "' ftp://127.0.0.1:" + strconv.Itoa(ts.port) + "; "
	out := lftpRun(t, dir, open+"mirror /tree down")
	sameTree(t, filepath.Join(ts.root, "tree"), filepath.Join(dir, "down"))
	if !strings.Contains(out, "AUTH TLS") || !strings.Contains(out, "PROT P") {
		t.Errorf("lftp session was not protected:\n%s", out)
	}
}

func TestWget(t *testing.T) {
	wget := needTool(t, "wget")
	ts := newTestServer(t, nil)
	dir := t.TempDir()
	base := "ftp://127.0.0.1:" + strconv.Itoa(ts.port)
	if code, o := run(t, dir, wget, "-q", "-r", "-np", "-nH", "--timeout=10", "--tries=1", base+"/tree/"); code != 0 {
		t.Fatalf("wget -r: exit %d\n%s\n%s", code, o, ts.logs)
	}
	sameTree(t, filepath.Join(ts.root, "tree"), filepath.Join(dir, "tree"))
	if code, o := run(t, dir, wget, "-q", "--no-passive-ftp", "--timeout=10", "--tries=1", "-O", "a.txt", base+"/sub/a.txt"); code != 0 {
		t.Fatalf("wget --no-passive-ftp: exit %d\n%s", code, o)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "hello\n" {
		t.Fatalf("wget active download %q", b)
	}
}
