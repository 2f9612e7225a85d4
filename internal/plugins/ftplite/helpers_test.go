package ftplite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/testutil"
)

const (
	testUser     = "alice"
	testPassword = "correct horse"
	secretText   = "TOP-SECRET-OUTSIDE-THE-ROOT"
)

// testServer is an in-process ftp-lite on 127.0.0.1:0 serving a fresh
// tree. Beside the root lies "outside", which no test may read or change;
// the root holds links pointing there.
type testServer struct {
	addr    string
	port    int
	base    string
	root    string
	outside string
	logs    *testutil.Buffer
	cfg     Config
	stop    func() // stops the server with a 5 s grace period
	ln      *reactor.Port
}

func newTestServer(t *testing.T, mod func(*Config)) *testServer {
	return newTestServerOn(t, "127.0.0.1", mod)
}

func newTestServerOn(t *testing.T, iface string, mod func(*Config)) *testServer {
	t.Helper()
	base := t.TempDir()
	ts := &testServer{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"), logs: &testutil.Buffer{}}
	files := map[string]string{
		"sub/a.txt":                 "hello\n",
		"sub/nested/deep.txt":       "deep\n",
		"zwei ü.txt":                "umlaut\n",
		"with space/file one.txt":   "spaced\n",
		"text.txt":                  "line one\nline two\nline three\n",
		"tree/top.txt":              "top\n",
		"tree/dir one/b.txt":        "b\n",
		"tree/dir one/ü/ç.txt":      "cedilla\n",
		"tree/deep/er/est/file.bin": strings.Repeat("\x00\x01binary", 1000),
		"keep.txt":                  "old content\n",
		"../outside/secret.txt":     secretText,
		"../outside/dir/more.txt":   secretText,
	}
	for name, body := range files {
		p := filepath.Join(ts.root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(ts.root, "empty"), 0o755))
	must(t, os.MkdirAll(filepath.Join(ts.root, "up"), 0o755))
	for name, target := range map[string]string{
		"escape": "../outside", "abs": ts.outside, "etc": "/etc", "inlink": "sub", "sub/back": "../..",
		"secretlink": "../outside/secret.txt",
	} {
		must(t, os.Symlink(target, filepath.Join(ts.root, name)))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	must(t, err)
	pw := filepath.Join(base, "passwd")
	must(t, os.WriteFile(pw, []byte("# test accounts\n"+testUser+":"+string(hash)+"\n"), 0o600))
	// An old atime on the secret makes any read of it visible (relatime
	// updates an atime older than a day).
	old := time.Now().Add(-72 * time.Hour)
	must(t, os.Chtimes(filepath.Join(ts.outside, "secret.txt"), old, old))

	ts.cfg = Config{
		Root: ts.root, AnonName: "anonymous", PasswordFile: pw,
		MaxClients: 50, MaxPerIP: 50, IdleTimeout: time.Minute, DataTimeout: 10 * time.Second,
		LoginDelay: 50 * time.Millisecond, MaxLoginFails: 3,
	}
	if mod != nil {
		mod(&ts.cfg)
	}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _, port := build("ftp-lite", reactor.Endpoint{Kind: "tcp", Interface: iface}, ts.cfg, log)
	ctx := context.Background()
	if err := c.PrivilegedStart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Stop(ctx)
	}
	t.Cleanup(ts.stop)
	ts.addr = port.Addr().String()
	ts.port = port.Addr().(*net.TCPAddr).Port
	ts.ln = port
	snap := snapshot(t, ts.outside)
	t.Cleanup(func() { ts.checkOutside(t, snap) })
	return ts
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot records every entry under dir with its size, mtime and atime.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		must(t, err)
		fi, err := d.Info()
		must(t, err)
		m[p] = fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() { // a directory's atime moves with this walk
			m[p] += fmt.Sprintf(" atime %d", fi.Sys().(*syscall.Stat_t).Atim.Nano())
		}
		return nil
	})
	return m
}

// checkOutside fails the test if anything beside the root was created,
// changed or read (atime) while it ran.
func (ts *testServer) checkOutside(t *testing.T, before map[string]string) {
	after := snapshot(t, ts.outside)
	for p, v := range after {
		if before[p] != v {
			t.Errorf("outside the root: %s changed or was read: %q -> %q", p, before[p], v)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("outside the root: %s was removed", p)
		}
	}
	if strings.Contains(ts.logs.String(), secretText) {
		t.Errorf("secret text in the server log")
	}
}

// ctrl is a raw control connection for exact replies.
type ctrl struct {
	t  *testing.T
	c  net.Conn
	tp *textproto.Conn
}

func dialCtrl(t *testing.T, addr string) *ctrl {
	return dialCtrlFrom(t, addr, nil)
}

func dialCtrlFrom(t *testing.T, addr string, local net.IP) *ctrl {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.Dial("tcp", addr)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cc := &ctrl{t: t, c: c, tp: textproto.NewConn(c)}
	if code, msg := cc.read(); code != 220 {
		t.Fatalf("greeting %d %s", code, msg)
	}
	return cc
}

func (c *ctrl) read() (int, string) {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

func (c *ctrl) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ctrl) cmd(line string) (int, string) {
	c.t.Helper()
	c.send(line)
	return c.read()
}

// expect sends line and fails unless the reply has the given code.
func (c *ctrl) expect(code int, line string) string {
	c.t.Helper()
	got, msg := c.cmd(line)
	if got != code {
		c.t.Fatalf("%q: got %d %s, want %d", line, got, msg, code)
	}
	return msg
}

func (c *ctrl) login(user, pass string) {
	c.t.Helper()
	c.expect(331, "USER "+user)
	c.expect(230, "PASS "+pass)
}

// epsv opens a passive data connection.
func (c *ctrl) epsv() net.Conn {
	c.t.Helper()
	msg := c.expect(229, "EPSV")
	i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	port, err := strconv.Atoi(msg[i+4 : j])
	must(c.t, err)
	host, _, _ := net.SplitHostPort(c.c.RemoteAddr().String())
	d, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	must(c.t, err)
	c.t.Cleanup(func() { d.Close() })
	d.SetDeadline(time.Now().Add(30 * time.Second))
	return d
}

func (ts *testServer) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.root, name))
	must(t, err)
	return string(b)
}

// connections returns the number of live control connections.
func (ts *testServer) connections() int { return ts.ln.Connections() }

func (ts *testServer) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(ts.logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, ts.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// needTool skips when a client is not installed; CI installs them all.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s); CI installs it", name, name)
	}
	return p
}

// run runs a client with a time bound and returns its exit code and output.
func run(t *testing.T, dir string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v timed out:\n%s", name, args, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	must(t, err)
	return 0, string(out)
}

// writeCert makes a self-signed certificate for 127.0.0.1, ::1 and
// localhost, and returns the paths of its PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// randomFile writes n random bytes under the root.
func (ts *testServer) randomFile(t *testing.T, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	must(t, os.WriteFile(filepath.Join(ts.root, name), b, 0o644))
	return b
}

// sparseFile makes a file of size zero bytes under the root without
// writing them: a download big enough to outlast any socket buffer.
func (ts *testServer) sparseFile(t *testing.T, name string, size int64) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(ts.root, name), nil, 0o644))
	must(t, os.Truncate(filepath.Join(ts.root, name), size))
}

// startDownload begins a binary RETR of name over EPSV and returns the data
// connection, unread.
func (c *ctrl) startDownload(name string) net.Conn {
	c.t.Helper()
	c.expect(200, "TYPE I")
	d := c.epsv()
	c.expect(150, "RETR "+name)
	return d
}

// cutUpload sends some data on d, the data connection of an upload under
// way, then cuts the upload by a reset of d (how is "reset") or by ABOR
// ("abort"), and checks the replies: 426, then 226 for the ABOR.
func (c *ctrl) cutUpload(d net.Conn, how string) {
	c.t.Helper()
	_, err := d.Write([]byte(strings.Repeat("data", 100000)))
	must(c.t, err)
	if how == "reset" {
		d.(*net.TCPConn).SetLinger(0)
		d.Close()
		if code, msg := c.read(); code != 426 {
			c.t.Fatalf("reset upload: %d %s", code, msg)
		}
		return
	}
	c.send("ABOR")
	if code, msg := c.read(); code != 426 {
		c.t.Fatalf("aborted upload: %d %s", code, msg)
	}
	if code, msg := c.read(); code != 226 {
		c.t.Fatalf("ABOR reply: %d %s", code, msg)
	}
}

// retrieve runs a transfer command over EPSV and returns the data.
func (c *ctrl) retrieve(line string) string {
	c.t.Helper()
	d := c.epsv()
	code, msg := c.cmd(line)
	if code != 150 {
		d.Close()
		return ""
	}
	b, err := io.ReadAll(d)
	must(c.t, err)
	if code, msg = c.read(); code != 226 {
		c.t.Fatalf("%s: end of transfer %d %s", line, code, msg)
	}
	return string(b)
}

// store uploads data with a transfer command over EPSV and returns the
// final reply code.
func (c *ctrl) store(line string, data []byte) int {
	c.t.Helper()
	d := c.epsv()
	code, msg := c.cmd(line)
	if code != 150 {
		d.Close()
		c.t.Logf("%s: %d %s", line, code, msg)
		return code
	}
	_, err := d.Write(data)
	must(c.t, err)
	d.Close()
	code, _ = c.read()
	return code
}
