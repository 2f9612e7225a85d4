// Package ftplite is the ftp-lite plugin: an FTP server (RFC 959, 2228,
// 2389, 2428, 3659, 4217) for real clients — curl, lftp, wget, python's
// ftplib, FileZilla — that keeps every client inside --root.
package ftplite

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/plugin"
	"github.com/twistd-go/twistd/reactor"
	"github.com/twistd-go/twistd/service"
)

func init() {
	plugin.Register(plugin.Maker{
		Name:        "ftp-lite",
		Description: "an FTP server jailed to one directory, with FTPS",
		Long:        longHelp,
		Options:     options,
		Commands:    []plugin.Command{passwdCommand},
	})
}

const longHelp = `Serves --root over FTP. --port takes a port number (on --iface, by default
every interface) or an endpoint string such as tcp:2121:interface=127.0.0.1.

Accounts: anonymous (the --userAnonymous name, or "ftp") with any password,
read-only unless --anonymous-write, which lets anonymous users create new
files and directories but never change, rename or delete existing ones.
--password-file holds "user:bcrypt-hash" lines; "twistd ftp-lite passwd
USER" prints one (the password read from the terminal or stdin, see
"twistd ftp-lite passwd --help"), and htpasswd -B lines work too;
plain-text passwords are refused at start.
Users may read and write anywhere under the root. A failed login is
answered after a delay that grows with the recent failures from the same
address; the third failure in a session closes it. Failures cost the
address, not the session: after 3 failures from one address it is
refused ("421 Too many failed logins from your address", at connect and
at USER) for 1 minute, and each further failure doubles that, up to an
hour; reconnecting does not help, and the checks of one address run one
at a time. A success clears the count. Unknown users are checked against
a hash as costly as the costliest account, so the time a failure takes
does not tell which names exist.

Jail: every path is resolved on the virtual tree ("/" is --root, ".." at
the top stays there) and opened through an os.Root, so "..", absolute
paths and symbolic links cannot lead outside --root. Links that point
outside are hidden from listings. Names holding control characters are
refused (553).

Uploads: a plain STOR writes to a hidden temporary file beside the target
(.NAME.ftp-upload-XXXXXXXX) and renames it over the target only when the
whole upload arrived, so an interrupted STOR never leaves a partial file
under the final name and an old file stays intact until replaced. APPE
and REST+STOR are resumes: they write in place, since clients resume by
asking the SIZE of the final name. An FTP upload ends with the data
connection's end of file, so a client that dies with a clean close cannot
be told from one that finished; an ABOR, a reset, an I/O error or a lost
control connection does mark the upload failed. STOU stores under a new
name in the current directory, told in its "150 FILE: name" reply; an
argument only starts the name (STOU report.txt stores report.txt.XXXXXXXX).
It goes through a temporary file too and never replaces a file, so
anonymous users may use it under --anonymous-write. MFMT YYYYMMDDHHMMSS
path sets a file's modification time (UTC); anonymous users may not.

Data connections: passive (PASV, EPSV) from --passive-ports, announcing
--public-address in PASV replies when behind NAT; a passive connection
from any address but the client's is refused. Active (PORT, EPRT) only to
the client's own address and a port of 1024 or above (no FTP bounce).
Downloads of plain files in binary mode use sendfile(2); ABOR (also as
Telnet IP/DM urgent data) stops a transfer with 426 then 226.

FTPS: with --tls-cert and --tls-key, AUTH TLS, PBSZ 0 and PROT P protect
the control and data connections; --tls-required refuses logins before
AUTH TLS and unprotected data connections.

Limits: command lines of 4 KiB; --idle-timeout between commands (not
counted during a transfer); --pasv-timeout for a passive listener to get
its data connection, counted from PASV or EPSV (then it is closed, and
logged); --data-timeout to open an active data connection and for a
transfer or a reply that stalls (a client that stops reading);
--max-clients and --max-clients-per-ip: a client over a limit is answered
"421" and disconnected.`

func options(fs *pflag.FlagSet) plugin.Build {
	port := fs.StringP("port", "p", "2121", "port number or endpoint to listen on")
	iface := fs.String("iface", "", "interface to listen on when --port is a number (default: every interface)")
	root := fs.StringP("root", "r", "/usr/local/ftp", "directory to serve")
	anon := fs.String("userAnonymous", "anonymous", `name for anonymous logins ("ftp" also works; "" turns anonymous off)`)
	anonWrite := fs.Bool("anonymous-write", false, "let anonymous users upload new files and make directories")
	pwFile := fs.String("password-file", "", "file of user:bcrypt-hash lines")
	passive := fs.String("passive-ports", "", "range of passive data ports, e.g. 30000-30100 (default: any)")
	public := fs.String("public-address", "", "IPv4 address to announce in PASV replies (behind NAT)")
	cert := fs.String("tls-cert", "", "PEM certificate (chain) for FTPS")
	key := fs.String("tls-key", "", "PEM private key for FTPS")
	tlsReq := fs.Bool("tls-required", false, "refuse logins and data connections without TLS")
	maxClients := fs.Int("max-clients", 200, "most simultaneous clients (0 = unlimited)")
	maxPerIP := fs.Int("max-clients-per-ip", 10, "most simultaneous clients from one address (0 = unlimited)")
	idle := fs.Duration("idle-timeout", 5*time.Minute, "close a control connection idle this long")
	data := fs.Duration("data-timeout", time.Minute, "time to open an active data connection, and longest stall of a transfer or of a reply")
	pasvTimeout := fs.Duration("pasv-timeout", 30*time.Second, "close a passive listener (PASV, EPSV) that got no data connection this long")
	// The root is opened before the chroot but read by the --uid user;
	// the password file and the key only by the starting user.
	plugin.MarkPath(fs, "root", plugin.PathUse{Dir: true, Early: true})
	for _, name := range []string{"password-file", "tls-cert", "tls-key"} {
		plugin.MarkPath(fs, name, plugin.PathUse{Early: true, Privileged: true})
	}
	return func(env plugin.Env) (service.Service, error) {
		ep, err := reactor.PortFlag(*port, *iface)
		if err != nil {
			return nil, err
		}
		cfg := Config{
			Root: *root, AnonName: *anon, AnonWrite: *anonWrite, PasswordFile: *pwFile,
			TLSCert: *cert, TLSKey: *key, TLSRequired: *tlsReq,
			MaxClients: *maxClients, MaxPerIP: *maxPerIP, IdleTimeout: *idle, DataTimeout: *data, PasvTimeout: *pasvTimeout,
			LoginDelay: time.Second, MaxLoginFails: 3,
			MaxConnections: env.MaxConnections, Metrics: env.Metrics,
		}
		if cfg.PassiveMin, cfg.PassiveMax, err = parseRange(*passive); err != nil {
			return nil, err
		}
		if *public != "" {
			if cfg.PublicAddr = net.ParseIP(*public).To4(); cfg.PublicAddr == nil {
				return nil, fmt.Errorf("invalid value %q for --public-address: not an IPv4 address", *public)
			}
		}
		if err := cfg.validate(); err != nil {
			return nil, err
		}
		return New(env.Name, ep, cfg, env.Log), nil
	}
}

func parseRange(s string) (lo, hi int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("invalid value %q for --passive-ports: want LOW-HIGH within 1024-65535", s)
	}
	return lo, hi, nil
}

func (c Config) validate() error {
	switch {
	case c.Root == "":
		return errors.New("--root must not be empty")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.TLSRequired && c.TLSCert == "":
		return errors.New("--tls-required needs --tls-cert and --tls-key")
	case c.MaxClients < 0 || c.MaxPerIP < 0:
		return errors.New("--max-clients and --max-clients-per-ip must be 0 or more")
	case c.IdleTimeout <= 0 || c.DataTimeout <= 0 || c.PasvTimeout <= 0:
		return errors.New("--idle-timeout, --data-timeout and --pasv-timeout must be positive")
	}
	return nil
}

// New returns the service tree: the jail (root, accounts, certificate,
// opened in the privileged step) and the port serving it.
func New(name string, ep reactor.Endpoint, cfg Config, log *slog.Logger) service.Service {
	c, _, _ := build(name, ep, cfg, log)
	return c
}

func build(name string, ep reactor.Endpoint, cfg Config, log *slog.Logger) (*service.Collection, *server, *reactor.Port) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxLoginFails <= 0 {
		cfg.MaxLoginFails = 3
	}
	if cfg.PasvTimeout <= 0 {
		cfg.PasvTimeout = 30 * time.Second
	}
	srv := newServer(name, cfg, log)
	port := reactor.NewPort("listener", ep, reactor.FactoryFunc(func(net.Addr) reactor.Protocol {
		return newSession(srv)
	}), log)
	port.System = name
	port.ReadBufferSize = 4096
	// A client that sends commands but never reads the replies leaves them
	// queued; once the queue makes no progress for as long as a stalled
	// transfer may take, the connection is closed the same way.
	port.WriteTimeout = cfg.DataTimeout
	port.MaxConnections = cfg.MaxConnections
	port.Metrics = cfg.Metrics.Port()
	c := service.NewCollection(name, log)
	c.Add(srv)
	c.Add(port)
	return c, srv, port
}
