package ftplite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/internal/passwd"
	"github.com/twistd-go/twistd/plugin"
	"github.com/twistd-go/twistd/reactor"
)

// Config is the plugin's parsed options.
type Config struct {
	Root         string
	AnonName     string
	AnonWrite    bool
	PasswordFile string
	PassiveMin   int // 0 = any port the kernel picks
	PassiveMax   int
	PublicAddr   net.IP // IPv4 announced in PASV replies; nil = the control connection's address
	TLSCert      string
	TLSKey       string
	TLSRequired  bool
	MaxClients   int // 0 = unlimited
	MaxPerIP     int // 0 = unlimited
	IdleTimeout  time.Duration
	DataTimeout  time.Duration
	// Clock times the idle timeout; nil means the real clock.
	Clock       reactor.Clock
	PasvTimeout time.Duration // how long a passive listener waits for its data connection

	// LoginDelay is the pause after a failed login, multiplied by the
	// number of recent failures from the same address.
	LoginDelay time.Duration
	// MaxLoginFails closes a session after that many failed logins.
	MaxLoginFails int
	// MaxConnections is the runner's --max-connections (0: no limit):
	// clients beyond it wait unread, where MaxClients answers 421.
	MaxConnections int
	// Metrics counts connections, logins and transfers (nil: not counted).
	Metrics *plugin.Metrics

	// uniqueSuffix makes the random part of STOU names; nil means
	// math/rand/v2's Uint32 (set by newServer). Tests set it to force a
	// name collision.
	uniqueSuffix func() uint32
	// now is the clock of the login lock-out; nil means time.Now. Tests
	// move it on instead of waiting minutes.
	now func() time.Time
}

// server is what every session shares: the jail, the accounts, the TLS
// configuration and the connection and login counters. It is a service
// so that the root directory, the password file and the key are opened
// in the privileged step (before a chroot or a uid change) and closed
// after the listener has drained.
type server struct {
	cfg  Config
	name string
	log  *slog.Logger

	root  *os.Root
	users map[string][]byte
	// dummy is checked for unknown users. Its cost is the highest of the
	// accounts', so a wrong name takes as long as a wrong password: the
	// time of a failed login tells no one which names exist.
	dummy []byte
	tls   *tls.Config

	bcrypt  chan struct{} // caps concurrent hash checks: bcrypt is slow on purpose
	metrics *metrics      // nil: not counted

	// idleSweep closes idle sessions for the whole server: one timer, not
	// one per session. Set in Start, under mu.
	idleSweep *reactor.LoopingCall

	mu       sync.Mutex
	clients  int
	sessions map[*session]struct{} // admitted and not yet lost
	perIP    map[string]int
	fails    map[string]*failRecord
	turns    map[string]*turn // per address: one password check at a time
}

func newServer(name string, cfg Config, log *slog.Logger) *server {
	if cfg.uniqueSuffix == nil {
		cfg.uniqueSuffix = rand.Uint32
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = reactor.RealClock()
	}
	s := &server{
		cfg: cfg, name: name, log: log,
		bcrypt:   make(chan struct{}, runtime.NumCPU()),
		perIP:    map[string]int{},
		sessions: map[*session]struct{}{},
		fails:    map[string]*failRecord{},
		turns:    map[string]*turn{},
	}
	s.metrics = newMetrics(cfg.Metrics.Registerer(), s)
	return s
}

func (s *server) Name() string     { return "jail" }
func (s *server) Describe() string { return s.cfg.Root }

// PrivilegedStart opens the root, reads the password file and loads the
// certificate while the process still has the rights to.
func (s *server) PrivilegedStart(context.Context) error {
	if s.root != nil {
		return nil
	}
	root, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return fmt.Errorf("--root %s: %w", s.cfg.Root, bareErr(err))
	}
	if s.cfg.PasswordFile != "" {
		users, err := passwd.Read("--password-file", s.cfg.PasswordFile)
		if err != nil {
			root.Close()
			return err
		}
		s.users = users
	}
	if s.dummy, err = dummyHash(s.users); err != nil {
		root.Close()
		return err
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			root.Close()
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.root = root
	return nil
}

func (s *server) Start(ctx context.Context) error {
	if err := s.PrivilegedStart(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idleSweep == nil && s.cfg.IdleTimeout > 0 {
		s.idleSweep = reactor.NewLoopingCall(s.cfg.Clock, s.sweepIdle)
		s.idleSweep.Start(idleSweepInterval(s.cfg.IdleTimeout), false)
	}
	return nil
}

// idleSweepInterval is how often the server looks for idle sessions: a
// session closes between d and d+d/8 after its last command.
func idleSweepInterval(d time.Duration) time.Duration { return max(d/8, 10*time.Millisecond) }

// sweepIdle closes the sessions idle for the whole timeout. It collects
// them under mu and checks each after: a session's check takes its own
// lock, and ConnectionLost takes that one before mu.
func (s *server) sweepIdle() {
	now := s.cfg.Clock.Now().UnixNano()
	limit := int64(s.cfg.IdleTimeout)
	var idle []*session
	s.mu.Lock()
	for sess := range s.sessions {
		if now-sess.lastActive.Load() >= limit && !sess.busy.Load() {
			idle = append(idle, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range idle {
		sess.closeIdle()
	}
}

func (s *server) Stop(context.Context) error {
	s.mu.Lock()
	sweep := s.idleSweep
	s.mu.Unlock()
	if sweep != nil {
		sweep.Stop() // not under mu: it waits for a sweep, which takes mu
	}
	if s.root != nil {
		s.root.Close()
	}
	return nil
}

func bareErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// dummyHash makes the hash checked for unknown users, at the highest cost
// among users (bcrypt's minimum when there are none: then no name exists
// to be told apart).
func dummyHash(users passwd.Users) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte("no such user"), users.MaxCost())
}

// checkPassword runs one bcrypt comparison, waiting for a free slot. It
// returns ctx's error when ctx ended before the comparison ran.
func (s *server) checkPassword(ctx context.Context, user, pass string) (bool, error) {
	select {
	case s.bcrypt <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.bcrypt }()
	hash, known := s.users[user]
	if !known {
		hash = s.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	return known && err == nil, nil
}

// admit counts a new control connection; it returns the 421 text when a
// limit is reached.
func (s *server) admit(sess *session) (refusal string) {
	ip := sess.ipKey
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxClients > 0 && s.clients >= s.cfg.MaxClients {
		return "Too many users, try again later."
	}
	if s.cfg.MaxPerIP > 0 && s.perIP[ip] >= s.cfg.MaxPerIP {
		return "Too many connections from your address."
	}
	s.clients++
	s.perIP[ip]++
	s.sessions[sess] = struct{}{}
	return ""
}

func (s *server) release(sess *session) {
	ip := sess.ipKey
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	s.clients--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// isAnonymous reports whether user logs in anonymously: the
// --userAnonymous name or "ftp", unless an account has that name. An empty
// --userAnonymous turns anonymous logins off.
func (s *server) isAnonymous(user string) bool {
	if s.cfg.AnonName == "" || s.users[user] != nil {
		return false
	}
	return user == s.cfg.AnonName || user == "ftp"
}
