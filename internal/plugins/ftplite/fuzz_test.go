package ftplite

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/internal/reactor"
)

// fakeTransport records what a session writes and, like the reactor's,
// ends the goroutines started with Go before ConnectionLost (end).
type fakeTransport struct {
	mu     sync.Mutex
	out    strings.Builder
	closed bool
	ended  bool
	jobs   sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func (f *fakeTransport) Go(fn func(context.Context)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return false
	}
	if f.ctx == nil {
		f.ctx, f.cancel = context.WithCancel(context.Background())
	}
	f.jobs.Go(func() { fn(f.ctx) })
	return true
}

func (f *fakeTransport) end() {
	f.mu.Lock()
	f.ended = true
	cancel := f.cancel
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	f.jobs.Wait()
}

func (f *fakeTransport) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, net.ErrClosed
	}
	return f.out.Write(p)
}
func (f *fakeTransport) WriteShared(p []byte) (int, error) { return f.Write(p) }
func (f *fakeTransport) Relay(to reactor.Transport, p []byte) (int, error) {
	return to.WriteShared(p)
}
func (f *fakeTransport) StartTLS(*tls.Config, []byte) error { return errors.New("no TLS here") }
func (f *fakeTransport) LoseConnection()                    { f.mu.Lock(); f.closed = true; f.mu.Unlock() }
func (f *fakeTransport) AbortConnection()                   { f.LoseConnection() }
func (f *fakeTransport) PauseProducing()                    {}
func (f *fakeTransport) ResumeProducing()                   {}
func (f *fakeTransport) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21}
}
func (f *fakeTransport) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

// FuzzSession feeds arbitrary command streams to a session and checks
// that every reply is well formed: "NNN text" lines, or a multi-line
// reply whose inner lines cannot be mistaken for a reply code.
func FuzzSession(f *testing.F) {
	base := f.TempDir()
	root := filepath.Join(base, "root")
	must(f, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(f, os.WriteFile(filepath.Join(root, "sub", "a.txt"), []byte("hello\n"), 0o644))
	must(f, os.Symlink("/etc", filepath.Join(root, "etc")))
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	pw := filepath.Join(base, "passwd")
	must(f, os.WriteFile(pw, []byte("u:"+string(hash)+"\n"), 0o600))
	srv := newServer("ftp-lite", Config{
		Root: root, AnonName: "anonymous", PasswordFile: pw, IdleTimeout: time.Minute,
		DataTimeout: 20 * time.Millisecond, LoginDelay: time.Millisecond, MaxLoginFails: 3,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	must(f, srv.PrivilegedStart(context.Background()))
	f.Cleanup(func() { srv.Stop(context.Background()) })

	for _, seed := range []string{
		"USER anonymous\r\nPASS x\r\nPWD\r\nCWD ../..\r\nLIST\r\nMLST sub/a.txt\r\nFEAT\r\nHELP\r\nSTAT sub\r\n",
		"USER u\r\nPASS pw\r\nMKD \"q\"\r\nPWD\r\nRNFR sub\r\nRNTO sub2\r\nSTAT\r\nQUIT\r\n",
		"USER u\r\nPASS wrong\r\nUSER u\r\nPASS pw\r\nPASV\r\nRETR sub/a.txt\r\nNOOP\r\nABOR\r\n",
		"\xff\xf4\xffABOR\r\nEPRT |1|127.0.0.2|5000|\r\nPORT 1,2,3\r\nREST 99999999999999999999\r\n",
		"USER anonymous\r\nPASS\r\nSIZE etc/passwd\r\nMDTM /../../etc\r\nOPTS MLST type;\r\nSITE CHMOD 777 x\r\n",
		"USER u\r\nPASS pw\r\nMFMT 20200102030405 sub/a.txt\r\nMFMT 2020 x\r\nMFMT 20201301000000.5 sub\r\nMFMT 20200101000000 etc/passwd\r\nMDTM sub/a.txt\r\n",
		"USER u\r\nPASS pw\r\nSTOU\r\nPASV\r\nSTOU a\x1bb\r\nREST 1\r\nSTOU\r\nEPSV\r\nSTOU sub/hint\r\nABOR\r\nUSER anonymous\r\nPASS\r\nSTOU\r\nMFMT 20200101000000 sub/a.txt\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := &fakeTransport{}
		s := newSession(srv)
		s.ConnectionMade(tr)
		s.DataReceived(in)
		tr.end()
		s.ConnectionLost(nil)
		tr.mu.Lock()
		out := tr.out.String()
		tr.mu.Unlock()
		checkReplies(t, out)
	})
}

func checkReplies(t *testing.T, out string) {
	if !strings.HasSuffix(out, "\r\n") {
		t.Fatalf("output does not end a line: %q", out)
	}
	isCode := func(l string) bool {
		return len(l) >= 4 && l[0] >= '1' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' && l[2] >= '0' && l[2] <= '9'
	}
	multi := ""
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		if strings.ContainsAny(l, "\r\n") {
			t.Fatalf("stray CR or LF in %q", l)
		}
		switch {
		case multi != "" && strings.HasPrefix(l, multi+" "):
			multi = ""
		case multi != "":
			if l == "" || l[0] >= '0' && l[0] <= '9' {
				t.Fatalf("continuation line %q could pass for a reply", l)
			}
		case isCode(l) && l[3] == ' ':
		case isCode(l) && l[3] == '-':
			multi = l[:3]
		default:
			t.Fatalf("malformed reply line %q in %q", l, out)
		}
	}
	if multi != "" {
		t.Fatalf("unterminated multi-line reply in %q", out)
	}
}
