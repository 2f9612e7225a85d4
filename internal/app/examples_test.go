package app_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/app/appfile"
	"github.com/twistd-go/twistd/internal/plugins"
	_ "github.com/twistd-go/twistd/internal/plugins/all"
	"github.com/twistd-go/twistd/internal/testutil"
)

// needPlugins skips examples whose plugins are built in other branches:
// they start running as soon as those plugins are compiled in.
func needPlugins(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, ok := plugins.Lookup(n); !ok {
			t.Skipf("plugin %s is not compiled in yet (issues 4, 5, 6); this example runs once it is", n)
		}
	}
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// TestExampleMixed runs configs/mixed.toml: poetry, echo over TCP and UDP,
// and chat (a login answered) in one process.
func TestExampleMixed(t *testing.T) {
	needPlugins(t, "fastpoetry", "echo", "chat")
	dir, ports := exampleCopy(t, "mixed.toml")
	p := testutil.Start(t, dir, "-n", "-y", "mixed.toml")
	p.WaitFor(t, "[-] started\n", 10*time.Second)

	poem, _ := os.ReadFile(filepath.Join(dir, "poem.txt"))
	if got := fetch(t, addr(ports[10000])); got != string(poem) {
		t.Errorf("poetry sent %q", got)
	}

	c, err := net.DialTimeout("tcp", addr(ports[8000]), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("echo this, please\n")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("tcp echo: %q, %v", got, err)
	}
	c.Close()

	u, err := net.Dial("udp", addr(ports[8000]))
	if err != nil {
		t.Fatal(err)
	}
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write([]byte("datagram"))
	buf := make([]byte, 64)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "datagram" {
		t.Errorf("udp echo: %q, %v", buf[:n], err)
	}
	u.Close()

	chatLogin(t, ports[8124])
	stopClean(t, p)
}

// chatLogin sends a verify frame (command 1) and expects the verify
// result (101) with code 1.
func chatLogin(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := []byte(`{"phone_number": "1001"}`)
	frame := binary.BigEndian.AppendUint32(nil, uint32(12+len(body)))
	frame = binary.BigEndian.AppendUint32(frame, 1)
	frame = binary.BigEndian.AppendUint32(frame, 1)
	if _, err := c.Write(append(frame, body...)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 12)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("chat reply: %v", err)
	}
	size, cmd := binary.BigEndian.Uint32(hdr), binary.BigEndian.Uint32(hdr[8:])
	reply := make([]byte, int(size)-12)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("chat reply body: %v", err)
	}
	var r struct{ Code int }
	if cmd != 101 || json.Unmarshal(reply, &r) != nil || r.Code != 1 {
		t.Errorf("chat verify: command %d, body %s", cmd, reply)
	}
}

const ftpClient = `
import ftplib, io, sys
port = int(sys.argv[1])
f = ftplib.FTP()
f.connect("127.0.0.1", port, timeout=10)
f.login("poet", sys.argv[2])
got = io.BytesIO()
f.retrbinary("RETR hope.txt", got.write)
sys.stdout.buffer.write(got.getvalue())
f.storbinary("STOR up.txt", io.BytesIO(b"uploaded by poet\n"))
f.quit()
a = ftplib.FTP()
a.connect("127.0.0.1", port, timeout=10)
a.login()
a.retrbinary("RETR hope.txt", io.BytesIO().write)
try:
    a.storbinary("STOR anon.txt", io.BytesIO(b"x"))
    print("ANONYMOUS UPLOAD ACCEPTED")
except ftplib.error_perm:
    pass
a.quit()
`

// TestExampleFTP runs configs/ftp-lite.toml with python3's ftplib: the
// user from the password file downloads and uploads, anonymous only reads.
func TestExampleFTP(t *testing.T) {
	needPlugins(t, "ftp-lite")
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	dir, ports := exampleCopy(t, "ftp-lite.toml")
	// The passive range moves to a free port too.
	path := filepath.Join(dir, "ftp-lite.toml")
	b, _ := os.ReadFile(path)
	pasv := strconv.Itoa(testutil.FreePort(t))
	b = regexp.MustCompile(`(?m)^passive-ports = ".*"$`).ReplaceAll(b, []byte(`passive-ports = "`+pasv+"-"+pasv+`"`))
	os.WriteFile(path, b, 0o644)
	// The example ships without accounts: add poet as its comment says.
	password := rand.Text()
	mk := exec.Command(testutil.Binary(t), "ftp-lite", "passwd", "poet")
	mk.Stdin = strings.NewReader(password + "\n")
	line, err := mk.Output()
	if err != nil {
		t.Fatalf("ftp-lite passwd: %v", err)
	}
	pw, _ := os.OpenFile(filepath.Join(dir, "ftp-passwd"), os.O_APPEND|os.O_WRONLY, 0)
	pw.Write(line)
	pw.Close()

	p := testutil.Start(t, dir, "-n", "-y", "ftp-lite.toml")
	p.WaitFor(t, "[-] started\n", 10*time.Second)
	out, err := exec.Command("python3", "-c", ftpClient, strconv.Itoa(ports[2121]), password).CombinedOutput()
	want, _ := os.ReadFile(filepath.Join(dir, "ftp-root", "hope.txt"))
	if err != nil || string(out) != string(want) {
		t.Errorf("ftplib: %v\n%s", err, out)
	}
	if up, err := os.ReadFile(filepath.Join(dir, "ftp-root", "up.txt")); err != nil || string(up) != "uploaded by poet\n" {
		t.Errorf("upload: %q, %v", up, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ftp-root", "anon.txt")); err == nil {
		t.Error("anonymous upload stored")
	}
	stopClean(t, p)
}

// TestExamplesParse loads every application file in configs/, whatever
// plugins are compiled in: their shape is checked even before the examples
// can run.
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(configsDir(t), "*.toml"))
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if _, err := appfile.Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}
