package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/reactor"
)

// settings are the runner options validated, built once from the flags
// (and an application file's [runner], already applied to them) before
// anything starts, in the starting command, so mistakes are reported on
// its terminal. The lifecycle reads them, never the flags.
type settings struct {
	daemonize      bool
	grace          time.Duration
	startWait      time.Duration
	maxConnections int

	rundir  string // absolute
	pidfile string // absolute; "" for none
	logfile string // absolute; "" for stdout (or syslog)
	chroot  string // absolute; "" for none
	umask   int    // -1: leave as is
	creds   *daemon.Credentials

	logMaxSize, logMaxFiles int
	syslog                  bool
	prefix                  string // syslog tag
	logFormat               string // "text" or "json"
	logLevel                slog.Level
	metrics                 *reactor.Endpoint // nil: no --metrics
	profile, profileMem     string
}

// newSettings checks every runner option; a bad one is a usage error, a
// missing directory or user a runtime failure, as twistd has them.
func newSettings(opts *Options, flags *pflag.FlagSet) (*settings, error) {
	switch {
	case opts.Grace < 0:
		return nil, usageErrorf("invalid value %q for --grace: must not be negative", opts.Grace)
	case opts.StartWait <= 0:
		return nil, usageErrorf("invalid value %q for --start-timeout: must be positive", opts.StartWait)
	case opts.MaxConnections < 0:
		return nil, usageErrorf("invalid value \"%d\" for --max-connections: must not be negative", opts.MaxConnections)
	case opts.LogMaxSize < 0 || opts.LogMaxSize > logging.MaxSizeMB:
		return nil, usageErrorf("invalid value %d for --logfile-max-size: must be 0 (no rotation) to %d (MiB)", opts.LogMaxSize, logging.MaxSizeMB)
	case opts.LogMaxFiles < 0:
		return nil, usageErrorf("invalid value %d for --logfile-max-files: must not be negative", opts.LogMaxFiles)
	case opts.LogFormat != "text" && opts.LogFormat != "json":
		return nil, usageErrorf("invalid value %q for --log-format: want text or json", opts.LogFormat)
	}
	level, ok := logging.ParseLevel(opts.LogLevel)
	if !ok {
		return nil, usageErrorf("invalid value %q for --log-level: want debug, info, warn or error", opts.LogLevel)
	}
	p := &settings{
		umask: -1, daemonize: !opts.NoDaemon, grace: opts.Grace, startWait: opts.StartWait,
		maxConnections: opts.MaxConnections, logMaxSize: opts.LogMaxSize, logMaxFiles: opts.LogMaxFiles,
		syslog: opts.Syslog, prefix: opts.Prefix, logFormat: opts.LogFormat, logLevel: level,
		profile: opts.Profile, profileMem: opts.ProfileMem,
	}
	if opts.Metrics != "" {
		ep, err := reactor.ParseEndpoint(opts.Metrics)
		if err != nil {
			return nil, usageErrorf("invalid value %q for --metrics: %v", opts.Metrics, err)
		}
		p.metrics = &ep
	}
	if opts.Umask != "" {
		m, err := daemon.ParseUmask(opts.Umask)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		p.umask = m
	} else if p.daemonize {
		p.umask = 0o077
	}
	if opts.Syslog && flags.Changed("logfile") {
		return nil, usageErrorf("--syslog and --logfile exclude each other")
	}
	if flags.Changed("prefix") && !opts.Syslog {
		return nil, usageErrorf("--prefix is the syslog tag; it needs --syslog")
	}
	if opts.EUID && opts.UID == "" && opts.GID == "" {
		return nil, usageErrorf("--euid needs --uid or --gid")
	}
	if p.daemonize && opts.Logfile == "-" {
		return nil, usageErrorf("--logfile - (stdout) needs --nodaemon: a daemon has no terminal")
	}

	dir, err := absDir("rundir", opts.Rundir)
	if err != nil {
		return nil, err
	}
	p.rundir = dir
	inRundir := func(f string) string {
		if filepath.IsAbs(f) {
			return filepath.Clean(f)
		}
		return filepath.Join(dir, f)
	}
	if opts.Pidfile != "" {
		p.pidfile = inRundir(opts.Pidfile)
	}
	switch {
	case opts.Syslog, opts.Logfile == "-", opts.Logfile == "" && !p.daemonize:
	case opts.Logfile == "":
		p.logfile = inRundir("twistd.log")
	default:
		p.logfile = inRundir(opts.Logfile)
	}

	if opts.Chroot != "" {
		jail, err := absDir("chroot", opts.Chroot)
		if err != nil {
			return nil, err
		}
		p.chroot = jail
		// The daemon reopens its log and removes its pidfile after the
		// chroot, by their paths inside the jail.
		for _, f := range []struct{ flag, path string }{{"--pidfile", p.pidfile}, {"--logfile", p.logfile}} {
			if f.path != "" && !within(jail, f.path) {
				return nil, usageErrorf("%s %s is outside --chroot %s; the daemon could not reach it after the chroot", f.flag, f.path, jail)
			}
		}
	}

	for flag, v := range map[string]string{"uid": opts.UID, "gid": opts.GID} {
		if n, err := strconv.Atoi(v); err == nil && n < 0 {
			return nil, usageErrorf("invalid value %q for --%s: must not be negative", v, flag)
		}
	}
	if opts.UID != "" || opts.GID != "" {
		c, err := daemon.ResolveCredentials(opts.UID, opts.GID, opts.EUID)
		if err != nil {
			return nil, failure(err)
		}
		if err := c.Possible(); err != nil {
			return nil, failure(fmt.Errorf("cannot drop privileges to %s: %w", c, err))
		}
		p.creds = c
	} else {
		p.creds = &daemon.Credentials{UID: -1, GID: -1}
	}
	return p, nil
}

// absDir makes the directory given to --what absolute and checks that it
// is one (a runtime failure, as twistd reports a missing --rundir).
func absDir(what, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(abs); err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		return "", failure(fmt.Errorf("%s %s: %w", what, dir, bareErr(err)))
	}
	return abs, nil
}

func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// inJail is path as seen from inside the chroot jail.
func inJail(jail, path string) string {
	rel, _ := filepath.Rel(jail, path)
	return "/" + rel
}

// pathNow is path as this process reaches it: inside the jail once it
// has chrooted to jail ("" for none).
func pathNow(jail, path string) string {
	if jail == "" {
		return path
	}
	return inJail(jail, path)
}

// bareErr drops *PathError/*SyscallError wrappers whose text repeats what
// the message already says.
func bareErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
