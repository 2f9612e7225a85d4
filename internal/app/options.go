package app

import (
	"time"

	"github.com/spf13/pflag"
)

// Options are the runner's flags as parsed, given before the plugin name;
// newSettings validates them into the settings the lifecycle reads.
type Options struct {
	NoDaemon    bool
	Logfile     string
	LogMaxSize  int
	LogMaxFiles int
	Pidfile     string
	Rundir      string
	UID         string
	GID         string
	Umask       string
	Chroot      string
	Syslog      bool
	Prefix      string
	EUID        bool
	Grace       time.Duration
	StartWait   time.Duration
	// MaxConnections reaches every plugin through its environment
	// (plugins.Env), which sets it on the plugin's ports.
	MaxConnections int
	Metrics        string // endpoint of /metrics, /healthz, /readyz; "" for none
	LogFormat      string
	LogLevel       string

	// Application files and profiling (application.go, profile.go).
	Application string
	Check       bool
	Profile     string
	ProfileMem  string
}

func (o *Options) register(fs *pflag.FlagSet) {
	fs.SortFlags = false
	fs.BoolVarP(&o.NoDaemon, "nodaemon", "n", false, "don't daemonize; log to stdout unless --logfile is given")
	fs.StringVarP(&o.Logfile, "logfile", "l", "", "log to this file (\"-\" for stdout; default stdout with --nodaemon, twistd.log otherwise)")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log lines as text (twistd's format) or json (one object per line)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log at this level and above: debug, info, warn or error (warn drops the line per connection)")
	fs.IntVar(&o.LogMaxSize, "logfile-max-size", 1, "rotate the log file when it reaches this many MiB (0: never, for logrotate)")
	fs.IntVar(&o.LogMaxFiles, "logfile-max-files", 10, "number of rotated log files to keep (0 keeps all)")
	fs.StringVar(&o.Pidfile, "pidfile", "twistd.pid", "name of the pidfile, locked while the daemon runs ('' for none)")
	fs.StringVarP(&o.Rundir, "rundir", "d", ".", "change to this directory before running; relative --pidfile and --logfile are in it")
	fs.StringVarP(&o.UID, "uid", "u", "", "user name or id to run as after binding")
	fs.StringVarP(&o.GID, "gid", "g", "", "group name or id to run as after binding")
	fs.StringVar(&o.Umask, "umask", "", "umask to use (octal; default 0077 when daemonized)")
	fs.StringVar(&o.Chroot, "chroot", "", "chroot to this directory after binding (--pidfile and --logfile must be inside it)")
	fs.BoolVar(&o.Syslog, "syslog", false, "log to the local syslog (/dev/log) instead of a file")
	fs.StringVar(&o.Prefix, "prefix", "twistd", "syslog tag (with --syslog)")
	fs.BoolVar(&o.EUID, "euid", false, "set only the effective user and group ids")
	fs.DurationVar(&o.Grace, "grace", 10*time.Second, "how long a shutdown waits for connections in flight")
	fs.DurationVar(&o.StartWait, "start-timeout", time.Minute, "how long the starting command waits for the daemon to report ready")
	fs.StringVar(&o.Metrics, "metrics", "", "serve Prometheus /metrics, /healthz and /readyz over HTTP on this endpoint (e.g. tcp:9100:interface=127.0.0.1; off unless given; metric names in twistd(1) METRICS)")
	fs.IntVar(&o.MaxConnections, "max-connections", 0, "serve at most this many connections per listener; more clients wait unread, in order (0 = no limit)")
}
