package ftplite

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/ftplite/cmdline"
	"github.com/twistd-go/twistd/reactor"
)

// maxPending bounds the commands a client may send while a transfer or a
// login check is running; they are answered in order once it ends.
const maxPending = 32

// session is one control connection. Its reactor callbacks run on the
// connection's goroutine; commands run with mu held, either there or on a
// job's goroutine replaying commands queued while the job ran. A job (a data
// transfer or a password check) runs in a goroutine the connection owns
// (Transport.Go) so that the control connection keeps reading: that is how
// ABOR reaches a transfer. The reactor cancels jobs when the connection
// closes, and runs ConnectionLost once they returned.
type session struct {
	srv      *server
	t        reactor.Transport
	log      *slog.Logger
	peerIP   net.IP
	localIP  net.IP
	ipKey    string
	admitted bool

	split *cmdline.Splitter

	busy       atomic.Bool
	lastActive atomic.Int64 // the server's idle sweep reads it

	mu       sync.Mutex
	closed   bool // ConnectionLost ran
	quit     bool // closing: ignore further commands
	stopping bool // the server is stopping: close when idle
	job      *job
	pending  []string

	pendingUser string
	user        string // logged-in name, "" before login
	anon        bool
	fails       int

	cwd        string
	ascii      bool
	rest       int64
	renameFrom string
	epsvAll    bool
	secure     bool // control channel is TLS
	switched   bool // AUTH TLS just ran: the splitter stops, StartTLS follows
	pbsz       bool
	protP      bool
	pasv       *net.TCPListener
	pasvEnds   time.Time   // when pasv is closed if no transfer took it
	pasvTimer  *time.Timer // closes pasv then
	active     *net.TCPAddr
	facts      map[string]bool
}

// job is a running transfer or login check.
type job struct {
	cancel    context.CancelFunc
	abortable bool
	aborted   bool
	what      string
}

// result is a job's final reply; closeText, when set, follows as a 421
// and the connection is closed.
type result struct {
	code      int
	text      string
	closeText string
}

func newSession(srv *server) *session {
	return &session{srv: srv, split: cmdline.New(cmdline.MaxLine), cwd: "/", ascii: true, facts: defaultFacts()}
}

func (s *session) ConnectionMade(t reactor.Transport) {
	s.t = t
	peer := t.RemoteAddr().String()
	if a, ok := t.RemoteAddr().(*net.TCPAddr); ok {
		s.peerIP = a.IP
		s.ipKey = a.IP.String()
	}
	if a, ok := t.LocalAddr().(*net.TCPAddr); ok {
		s.localIP = a.IP
	}
	s.log = s.srv.log.With("system", s.srv.name+","+peer)
	if wait, first := s.srv.refusing(s.ipKey); wait > 0 {
		if first {
			s.log.Warn("connection refused: too many failed logins from this address (the rest of this lock-out is not logged)", "for", wait.Round(time.Second).String())
		}
		s.quit = true
		t.Write([]byte("421 " + lockText(wait) + "\r\n"))
		t.LoseConnection()
		return
	}
	s.touch() // before admit shows the session to the idle sweep
	if msg := s.srv.admit(s); msg != "" {
		s.log.Warn("connection refused: " + msg)
		s.quit = true
		t.Write([]byte("421 " + msg + "\r\n"))
		t.LoseConnection()
		return
	}
	s.admitted = true
	s.reply(220, "twistd ftp-lite ready.")
}

func (s *session) DataReceived(p []byte) {
	rest := s.split.Feed(p, s.onLine)
	s.mu.Lock()
	switched := s.switched
	s.switched = false
	s.mu.Unlock()
	if switched {
		if err := s.t.StartTLS(s.srv.tls, s.split.TrimLF(rest)); err != nil {
			s.t.AbortConnection()
		}
	}
}

func (s *session) ConnectionLost(error) {
	if !s.admitted {
		return
	}
	s.mu.Lock()
	s.closed, s.quit = true, true
	s.closePassive()
	s.mu.Unlock()
	s.srv.release(s)
}

// StopRequested closes an idle session at once and a busy one when its
// transfer ends.
func (s *session) StopRequested() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	s.closeIfStopping()
}

func (s *session) closeIfStopping() {
	if s.stopping && s.job == nil && !s.quit {
		s.quit = true
		s.reply(421, "Server shutting down.")
		s.t.LoseConnection()
	}
}

func (s *session) touch() { s.lastActive.Store(s.srv.cfg.Clock.Now().UnixNano()) }

// closeIdle closes the session the server's sweep found idle, unless a
// command or a transfer started since the sweep looked.
func (s *session) closeIdle() {
	limit := s.srv.cfg.IdleTimeout
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.quit || s.job != nil || s.busy.Load() {
		return
	}
	if s.srv.cfg.Clock.Now().Sub(time.Unix(0, s.lastActive.Load())) < limit {
		return
	}
	s.quit = true
	s.log.Info("closing idle session")
	s.reply(421, "Timeout: no command for "+limit.String()+".")
	s.t.LoseConnection()
}

// onLine handles one command line from the splitter. It returns false to
// stop the splitter when the stream switches to TLS.
func (s *session) onLine(l []byte, tooLong bool) bool {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quit {
		return true
	}
	if tooLong {
		s.reply(500, "Command line too long.")
		return true
	}
	line := string(l)
	if s.job != nil {
		verb, _, _ := cmdline.Parse(line)
		switch verb {
		case "ABOR":
			s.abort()
			return true
		case "STAT":
			s.reply(213, "Status: "+s.job.what+" in progress.")
			return true
		case "AUTH":
			s.reply(503, "AUTH is not allowed during a transfer.")
			return true
		}
		if len(s.pending) >= maxPending {
			s.quit = true
			s.reply(421, "Too many commands queued.")
			s.t.LoseConnection()
			return true
		}
		s.pending = append(s.pending, line)
		return true
	}
	s.dispatch(line)
	return !s.switched
}

// abort ends the running transfer; its goroutine answers 426 then 226.
func (s *session) abort() {
	if !s.job.abortable {
		s.pending = append(s.pending, "ABOR")
		return
	}
	s.job.aborted = true
	s.job.cancel()
}

// startJob runs fn in a goroutine the connection owns; its ctx ends with
// ABOR or the connection. Called with mu held.
func (s *session) startJob(what string, abortable bool, fn func(ctx context.Context) result) {
	ctx, cancel := context.WithCancel(context.Background())
	j := &job{cancel: cancel, abortable: abortable, what: what}
	s.job = j
	s.busy.Store(true)
	started := s.t.Go(func(conn context.Context) {
		defer context.AfterFunc(conn, cancel)()
		r := fn(ctx)
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		if conn.Err() != nil {
			s.quit = true // the client is gone: run nothing it queued
		}
		s.job = nil
		s.busy.Store(false)
		s.touch()
		switch {
		case !j.aborted:
			s.reply(r.code, r.text)
		case r.code == 226: // ABOR came after the transfer was done
			s.reply(r.code, r.text)
			s.reply(226, "ABOR successful.")
		default:
			s.reply(426, "Connection closed; transfer aborted.")
			s.reply(226, "ABOR successful.")
		}
		if r.closeText != "" && !s.quit {
			s.quit = true
			s.reply(421, r.closeText)
			s.t.LoseConnection()
		}
		for !s.quit && s.job == nil && len(s.pending) > 0 {
			line := s.pending[0]
			s.pending = s.pending[1:]
			s.dispatch(line)
		}
		s.closeIfStopping()
	})
	if !started { // the connection is closing
		cancel()
		s.job = nil
		s.busy.Store(false)
	}
}

// reply sends one reply line. Text never holds CR or LF: names that do
// are refused before they get here, and this is the last guard.
func (s *session) reply(code int, text string) {
	s.write(strconv.Itoa(code) + " " + oneLine(text) + "\r\n")
}

// replyLines sends a multi-line reply: "code-first", the lines indented
// by one space, then "code last".
func (s *session) replyLines(code int, first string, lines []string, last string) {
	var b strings.Builder
	c := strconv.Itoa(code)
	b.WriteString(c + "-" + oneLine(first) + "\r\n")
	for _, l := range lines {
		b.WriteString(" " + oneLine(l) + "\r\n")
	}
	b.WriteString(c + " " + oneLine(last) + "\r\n")
	s.write(b.String())
}

func (s *session) write(text string) { s.t.Write([]byte(text)) }

func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// quote renders a path for a 257 reply: inside double quotes, with any
// quote doubled (RFC 959 appendix II).
func quote(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}
