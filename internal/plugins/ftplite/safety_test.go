package ftplite

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJail: every way out of the root is answered inside it. The server's
// cleanup checks that nothing beside the root was read or changed.
func TestJail(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)

	c.expect(250, "CWD ../../..")
	if msg := c.expect(257, "PWD"); !strings.HasPrefix(msg, `"/"`) {
		t.Fatalf("PWD after CWD ../../.. = %s", msg)
	}
	for _, name := range []string{
		"../../outside/secret.txt", "/etc/passwd", "//etc/passwd", "sub/../../x", "../outside/secret.txt",
		"escape/secret.txt", "abs/secret.txt", "etc/hostname", "etc/passwd", "sub/back/outside/secret.txt",
		"secretlink", "escape/dir/more.txt", "/escape/../escape/secret.txt",
	} {
		for _, verb := range []string{"SIZE", "MDTM", "MLST"} {
			if code, msg := c.cmd(verb + " " + name); code != 550 {
				t.Errorf("%s %s: %d %s", verb, name, code, msg)
			}
		}
		if code, msg := c.cmd("CWD " + name); code != 550 {
			t.Errorf("CWD %s: %d %s", name, code, msg)
		}
		c.epsv()
		if code, msg := c.cmd("RETR " + name); code != 550 {
			t.Errorf("RETR %s: %d %s", name, code, msg)
		}
	}
	for _, dir := range []string{"escape", "abs", "etc", "sub/back"} {
		c.epsv()
		if code, msg := c.cmd("LIST " + dir); code != 550 {
			t.Errorf("LIST %s: %d %s", dir, code, msg)
		}
	}
	// Writes through links that lead out.
	for _, line := range []string{"MKD escape/newdir", "DELE escape/secret.txt", "DELE secretlink/x",
		"SITE CHMOD 777 escape/secret.txt", "RMD escape/dir", "MKD abs/x"} {
		if code, msg := c.cmd(line); code != 550 {
			t.Errorf("%s: %d %s", line, code, msg)
		}
	}
	c.expect(350, "RNFR sub/a.txt")
	if code, msg := c.cmd("RNTO escape/stolen.txt"); code != 550 {
		t.Errorf("RNTO escape/stolen.txt: %d %s", code, msg)
	}
	for _, name := range []string{"escape/new.txt", "abs/new.txt", "sub/back/outside/new.txt"} {
		d := c.epsv()
		code, msg := c.cmd("STOR " + name)
		if code == 150 {
			d.Write([]byte("x"))
			d.Close()
			code, msg = c.read()
		}
		if code != 550 {
			t.Errorf("STOR %s: %d %s", name, code, msg)
		}
	}
	// A link inside the root is followed.
	c.expect(213, "SIZE inlink/a.txt")
	c.expect(250, "CWD inlink")
	c.expect(250, "CWD /")

	// Control characters: NUL and ESC are refused; a CR ends the line.
	c.expect(553, "RETR a\x00b")
	c.expect(553, "MKD a\x1bb")
	c.expect(553, "CWD \x7f")
	c.send("SIZE sub/a.txt\rXYZ")
	if code, _ := c.read(); code != 213 {
		t.Fatalf("SIZE before a bare CR: %d", code)
	}
	if code, _ := c.read(); code != 502 {
		t.Fatalf("line after a bare CR: %d", code)
	}
	c.expect(200, "NOOP")

	// Listings hide links that lead out and never show their targets.
	listing := c.retrieve("LIST")
	for _, hidden := range []string{"escape", "abs", "etc", "secretlink", "outside"} {
		if strings.Contains(listing, " "+hidden+"\r\n") || strings.Contains(listing, "->") {
			t.Errorf("LIST shows %s:\n%s", hidden, listing)
		}
	}
	if !strings.Contains(listing, " inlink\r\n") || !strings.Contains(listing, " sub\r\n") {
		t.Errorf("LIST misses entries:\n%s", listing)
	}
	if got := c.retrieve("NLST sub/back"); got != "" {
		t.Errorf("NLST of a link out listed %q", got)
	}
}

// TestNoBounce: PORT and EPRT to another address or a privileged port are
// refused and no connection is attempted (a listener on 127.0.0.2 sees
// nothing).
func TestNoBounce(t *testing.T) {
	ts := newTestServer(t, nil)
	foreign, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 not usable here: %v", err)
	}
	defer foreign.Close()
	fport := foreign.Addr().(*net.TCPAddr).Port
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	c.expect(200, "TYPE I")
	for _, line := range []string{
		"PORT 127,0,0,2," + strconv.Itoa(fport>>8) + "," + strconv.Itoa(fport&255),
		"EPRT |1|127.0.0.2|" + strconv.Itoa(fport) + "|",
		"PORT 127,0,0,1,0,25", "PORT 127,0,0,1,3,255", "EPRT |1|127.0.0.1|1023|",
		"EPRT |2|::1|5282|",
	} {
		c.expect(504, line)
	}
	// Nothing was kept for the next transfer.
	c.expect(425, "RETR sub/a.txt")
	for _, line := range []string{"PORT 1,2,3", "PORT 127,0,0,300,4,1", "PORT a,b,c,d,e,f", "EPRT |1|::1|5000|", "EPRT x", "EPRT |1|127.0.0.1|0|"} {
		c.expect(501, line)
	}
	c.expect(522, "EPRT |3|127.0.0.1|5000|")
	foreign.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if conn, err := foreign.Accept(); err == nil {
		conn.Close()
		t.Fatal("the server connected to the foreign address")
	}
	ts.waitLog(t, "refused PORT")
	ts.waitLog(t, "target=127.0.0.2:"+strconv.Itoa(fport))

	// The client's own address and an unprivileged port works (active mode).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	c.expect(200, "EPRT |1|127.0.0.1|"+strconv.Itoa(p)+"|")
	c.expect(150, "RETR sub/a.txt")
	d, err := ln.Accept()
	must(t, err)
	b, _ := io.ReadAll(d)
	d.Close()
	c.read()
	if string(b) != "hello\n" {
		t.Fatalf("active RETR got %q", b)
	}
}

// TestNoPassiveHijack: a connection to the passive port from another
// address is closed without data; the client's own then gets the file.
func TestNoPassiveHijack(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	c.expect(200, "TYPE I")
	msg := c.expect(229, "EPSV")
	port := msg[strings.Index(msg, "(|||")+4 : strings.LastIndex(msg, "|)")]
	intruder, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer intruder.Close()
	legit, err := net.Dial("tcp", "127.0.0.1:"+port)
	must(t, err)
	defer legit.Close()
	c.expect(150, "RETR sub/a.txt")
	intruder.SetDeadline(time.Now().Add(10 * time.Second))
	stolen, _ := io.ReadAll(intruder)
	got, _ := io.ReadAll(legit)
	if code, _ := c.read(); code != 226 {
		t.Fatalf("transfer end %d", code)
	}
	if len(stolen) != 0 || string(got) != "hello\n" {
		t.Fatalf("intruder got %q, client got %q", stolen, got)
	}
	ts.waitLog(t, "refused a passive data connection from another address")
}

// TestPassiveNoLeak: PASV after PASV replaces the listener; none is left.
func TestPassiveNoLeak(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.PassiveMin, c.PassiveMax = 40000, 40999 })
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	c.expect(227, "PASV")
	before := openFDs(t)
	for range 300 {
		msg := c.expect(227, "PASV")
		if !strings.Contains(msg, "(127,0,0,1,") {
			t.Fatalf("PASV reply %q", msg)
		}
		c.expect(229, "EPSV")
	}
	if after := openFDs(t); after > before+2 {
		t.Fatalf("open descriptors grew from %d to %d over 600 PASV/EPSV", before, after)
	}
	c.expect(200, "EPSV ALL")
	c.expect(503, "PASV")
	c.expect(503, "PORT 127,0,0,1,200,1")
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestLimits: long lines, idle sessions, data connections never made,
// and too many clients.
func TestLimits(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.IdleTimeout, c.DataTimeout, c.PasvTimeout, c.MaxClients, c.MaxPerIP = 400*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 4, 2
	})
	c := dialCtrl(t, ts.addr)
	c.expect(500, strings.Repeat("A", 5000))
	c.login("anonymous", "x@")
	c.expect(200, "NOOP")
	c.expect(227, "PASV")
	c.expect(425, "RETR sub/a.txt") // nobody connects to the passive port

	// A download the client stops reading ends after the data timeout.
	ts.sparseFile(t, "huge.bin", 256<<20)
	d := c.startDownload("huge.bin")
	if msg := c.expect(213, "STAT"); !strings.Contains(msg, "download in progress") {
		t.Errorf("STAT during a transfer: %q", msg)
	}
	if code, msg := c.read(); code != 426 {
		t.Fatalf("stalled download: %d %s", code, msg)
	}
	d.Close()
	c.expect(200, "NOOP")

	// Per-address limit: a second connection from 127.0.0.1 is the limit,
	// a third is refused; 127.0.0.2 may still come; then the total is full.
	dialCtrl(t, ts.addr)
	refused := func(local net.IP, want string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
		conn, err := d.Dial("tcp", ts.addr)
		must(t, err)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(b), "421 ") || !strings.Contains(string(b), want) {
			t.Fatalf("over the limit got %q", b)
		}
	}
	refused(nil, "your address")
	ts.waitLog(t, "connection refused: Too many connections from your address.")
	dialCtrlFrom(t, ts.addr, net.IPv4(127, 0, 0, 2))
	dialCtrlFrom(t, ts.addr, net.IPv4(127, 0, 0, 3))
	refused(net.IPv4(127, 0, 0, 4), "Too many users")

	// The idle session is closed with 421.
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if code, msg := c.read(); code != 421 || !strings.Contains(msg, "Timeout") {
		t.Fatalf("idle session got %d %s", code, msg)
	}
}

// TestCommandSequence: unknown, out-of-order and unauthenticated commands
// get their codes and the session goes on.
func TestCommandSequence(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.expect(502, "FOO bar")
	c.expect(500, "12AB")
	c.expect(503, "PASS x")
	c.expect(530, "PWD")
	c.expect(530, "RETR sub/a.txt")
	c.expect(215, "SYST")
	feat := c.expect(211, "FEAT")
	for _, f := range []string{"EPSV", "MLST type*;size*;modify*;perm*;UNIX.mode*;", "REST STREAM", "UTF8", "SIZE", "MDTM"} {
		if !strings.Contains(feat, "\n "+f) && !strings.Contains(feat, " "+f+"\n") {
			t.Errorf("FEAT lacks %q:\n%s", f, feat)
		}
	}
	if strings.Contains(feat, "AUTH TLS") {
		t.Error("FEAT offers AUTH TLS without a certificate")
	}
	c.expect(502, "AUTH TLS")
	c.login(testUser, testPassword)
	c.expect(503, "RNTO x")
	c.expect(200, "OPTS UTF8 ON")
	c.expect(200, "TYPE L 8")
	c.expect(504, "TYPE E")
	c.expect(504, "MODE B")
	c.expect(200, "STRU F")
	c.expect(202, "ALLO 100")
	c.expect(501, "REST -5")
	c.expect(225, "ABOR")
	c.expect(214, "HELP")
	c.expect(211, "STAT")
	if msg := c.expect(213, "STAT sub"); !strings.Contains(msg, " a.txt") {
		t.Errorf("STAT sub: %s", msg)
	}
	c.expect(250, "CWD with space")
	if msg := c.expect(257, "PWD"); msg != `"/with space" is the current directory.` {
		t.Errorf("PWD %q", msg)
	}
	if msg := c.expect(257, `MKD say "hi"`); !strings.HasPrefix(msg, `"/with space/say ""hi"""`) {
		t.Errorf("MKD reply %q", msg)
	}
	if msg := c.expect(250, "MLST file one.txt"); !strings.Contains(msg, "type=file;size=7;") || !strings.Contains(msg, "perm=adfrw;") {
		t.Errorf("MLST: %q", msg)
	}
	c.expect(200, "OPTS MLST type;size;")
	if msg := c.expect(250, "MLST file one.txt"); !strings.Contains(msg, "\n type=file;size=7; /with space/file one.txt") {
		t.Errorf("MLST after OPTS: %q", msg)
	}
	c.expect(221, "QUIT")
}

// TestUploadIntegrity: an upload cut by a reset or by ABOR leaves the old
// file as it was and no temporary file behind.
func TestUploadIntegrity(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")
	for _, how := range []string{"reset", "abort"} {
		d := c.epsv()
		c.expect(150, "STOR keep.txt")
		c.cutUpload(d, how)
		if got := ts.read(t, "keep.txt"); got != "old content\n" {
			t.Fatalf("%s: keep.txt now %q", how, got[:min(len(got), 40)])
		}
		if tmp, _ := filepath.Glob(filepath.Join(ts.root, ".keep.txt.ftp-upload-*")); len(tmp) > 0 {
			t.Fatalf("%s: temporary file left: %v", how, tmp)
		}
		c.expect(200, "NOOP")
	}
	// A complete upload replaces it.
	if code := c.store("STOR keep.txt", []byte("new content\n")); code != 226 {
		t.Fatalf("STOR %d", code)
	}
	if got := ts.read(t, "keep.txt"); got != "new content\n" {
		t.Fatalf("keep.txt now %q", got)
	}
}

// TestAborTelnet sends ABOR as lftp does (IAC IP, then IAC DM as TCP
// urgent data) during a download the client does not read.
func TestAborTelnet(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.sparseFile(t, "huge.bin", 256<<20)
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	d := c.startDownload("huge.bin")
	buf := make([]byte, 4096)
	_, err := io.ReadFull(d, buf)
	must(t, err)
	c.c.Write([]byte{0xff, 0xf4})
	raw, err := c.c.(*net.TCPConn).SyscallConn()
	must(t, err)
	raw.Write(func(fd uintptr) bool {
		err = syscall.Sendto(int(fd), []byte{0xff, 0xf2}, syscall.MSG_OOB, nil)
		return true
	})
	must(t, err)
	c.send("ABOR")
	if code, msg := c.read(); code != 426 {
		t.Fatalf("ABOR: first reply %d %s", code, msg)
	}
	if code, msg := c.read(); code != 226 {
		t.Fatalf("ABOR: second reply %d %s", code, msg)
	}
	c.expect(200, "NOOP")
}

// TestAnonymousWrite: --anonymous-write allows new files and directories
// only.
func TestAnonymousWrite(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AnonWrite = true })
	c := dialCtrl(t, ts.addr)
	c.login("ftp", "x@")
	c.expect(200, "TYPE I")
	if code := c.store("STOR up/new.txt", []byte("fresh")); code != 226 || ts.read(t, "up/new.txt") != "fresh" {
		t.Fatalf("anonymous STOR of a new file: %d", code)
	}
	c.expect(257, "MKD up/dir")
	for _, line := range []string{"STOR keep.txt", "STOR up/new.txt", "APPE up/new.txt", "DELE up/new.txt", "RNFR up/new.txt", "RMD up/dir", "SITE CHMOD 777 up/new.txt"} {
		if code, msg := c.cmd(line); code != 550 {
			t.Errorf("anonymous %s: %d %s", line, code, msg)
		}
	}
	c.expect(350, "REST 2")
	c.expect(550, "STOR up/new.txt")
	if ts.read(t, "keep.txt") != "old content\n" || ts.read(t, "up/new.txt") != "fresh" {
		t.Fatal("anonymous changed an existing file")
	}
}

// TestSpecialFiles: a named pipe in the tree is refused at once instead
// of blocking the session on open, and is never opened at all: a writer
// waiting for a reader stays blocked.
func TestSpecialFiles(t *testing.T) {
	ts := newTestServer(t, nil)
	fifo := filepath.Join(ts.root, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	opened := make(chan *os.File, 1)
	go func() {
		w, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once a reader opens it
		opened <- w
	}()
	t.Cleanup(func() {
		// A reader held open lets the writer go, whenever it got to its open.
		r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		must(t, err)
		if w := <-opened; w != nil {
			w.Close()
		}
		r.Close()
	})
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.epsv()
	c.expect(550, "RETR fifo")
	c.expect(550, "SIZE fifo")
	c.expect(550, "STOR fifo")
	c.expect(550, "MFMT 20000101000000 fifo")
	c.expect(200, "NOOP")
	// A server open would have woken the writer before its reply; there is
	// no event for "not opened", so give a woken writer a moment to show.
	select {
	case w := <-opened:
		opened <- w // for the cleanup to close
		t.Fatal("the server opened the named pipe")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestGracefulStop: a stop lets a running download finish, then says 421.
func TestGracefulStop(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.sparseFile(t, "huge.bin", 64<<20)
	c := dialCtrl(t, ts.addr)
	c.login("anonymous", "x@")
	d := c.startDownload("huge.bin")
	stopped := make(chan struct{})
	go func() { ts.stop(); close(stopped) }()
	ts.waitLog(t, "stopped listening")
	n, err := io.Copy(io.Discard, d)
	must(t, err)
	if code, msg := c.read(); code != 226 || n != 64<<20 {
		t.Fatalf("download during stop: %d bytes, %d %s", n, code, msg)
	}
	if code, msg := c.read(); code != 421 {
		t.Fatalf("after the download: %d %s", code, msg)
	}
	c.c.Close()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
}

// TestUnreadReplies: a client that pipelines commands and never reads the
// replies fills every buffer on the way; the session ends once a reply
// write has made no progress for the data timeout, instead of holding its
// slot for good.
func TestUnreadReplies(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DataTimeout = 300 * time.Millisecond })
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	c, err := d.Dial("tcp", ts.addr)
	must(t, err)
	defer c.Close()
	// About 20 MiB of replies asked for, far beyond the socket buffers; the
	// writer stops when the server stops reading or the deadline passes.
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	go func() {
		burst := []byte(strings.Repeat("NOOP\r\n", 10000))
		for range 100 {
			if _, err := c.Write(burst); err != nil {
				return
			}
		}
	}()
	ts.waitLog(t, "peer read nothing for 300ms: closing")
	deadline := time.Now().Add(5 * time.Second)
	for ts.connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d session(s) still open", ts.connections())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPassiveTimeout: a passive listener that gets no data connection is
// closed after --pasv-timeout, with a log line, whether or not a transfer
// command came; the session goes on.
func TestPassiveTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.PasvTimeout = 300 * time.Millisecond })
	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)

	msg := c.expect(229, "EPSV")
	port := msg[strings.Index(msg, "(|||")+4 : strings.LastIndex(msg, "|)")]
	ts.waitLog(t, `msg="closed a passive listener: no data connection" system=`)
	ts.waitLog(t, "port="+port+" timeout=300ms")
	if d, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 5*time.Second); err == nil {
		d.Close()
		t.Errorf("passive port %s still accepts after the timeout", port)
	}
	c.expect(425, "RETR sub/a.txt")

	// A transfer command waiting for its connection gets the same bound,
	// not --data-timeout (10 s here).
	c.expect(229, "EPSV")
	start := time.Now()
	c.expect(425, "RETR sub/a.txt")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("RETR waited %v for a passive connection", took)
	}
	c.expect(200, "NOOP")
}
