package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
)

// runner carries one run of the lifecycle (DESIGN.md): build → daemonize →
// open logs → pidfile → privileged start → chroot → drop privileges →
// start → ready → wait for a signal → stop in reverse → release → exit.
type runner struct {
	set    *settings // the runner options, validated
	name   string    // application name: the plugin or application file's
	runs   string    // what runs, for the daemon record: "plugin echo", "application poetry (FILE)"
	out    *logging.SwitchWriter
	log    *slog.Logger
	root   *service.Collection
	stdout io.Writer
	stderr io.Writer

	sink   *logging.Sink
	status *daemon.Status // the parent's status pipe, in the daemon child

	health  *health
	metrics *runnerMetrics // nil without --metrics

	origin    origin
	inherited *daemon.Inherited // what the replaced process handed us (reload)
	pid       *daemon.Pidfile
	info      daemon.Info // the record beside the pidfile
	served    bool        // reported ready
	handedTo  int         // the replacement that took over, after a reload
}

// newRunner checks the runner options and sets up logging to stderr until
// the real sink is open, so services built now log to the right place.
func newRunner(opts *Options, flags *pflag.FlagSet, name string, stdout, stderr io.Writer) (*runner, error) {
	set, err := newSettings(opts, flags)
	if err != nil {
		return nil, err
	}
	r := &runner{set: set, name: name, runs: "plugin " + name, out: logging.NewSwitchWriter(stderr), stdout: stdout, stderr: stderr}
	// The journal and syslog stamp lines themselves and read a <priority>
	// prefix instead of our level words' position.
	journal := set.syslog || (set.logfile == "" && logging.IsJournal(os.Stdout))
	lo := &logging.Options{Journal: journal, Level: set.logLevel}
	if set.logFormat == "json" {
		r.log = slog.New(logging.NewJSONHandler(r.out, lo))
	} else {
		r.log = slog.New(logging.NewTextHandler(r.out, lo))
	}
	r.root = service.NewCollection(name, r.log)
	r.health = newHealth()
	r.origin = startedAs()
	if set.metrics != nil {
		r.metrics = newRunnerMetrics()
		// First in the tree: bound with the others, stopped last.
		r.root.Add(newObserver(*set.metrics, r.health, r.metrics.reg, r.log))
	}
	return r, nil
}

// add builds a plugin's service and adds it to the application.
func (r *runner) add(pluginName, serviceName string, build plugins.Build) error {
	svc, err := build(r.env(serviceName))
	if err != nil {
		return pluginUsageErrorf(pluginName, "%v", err)
	}
	if err := r.root.Add(svc); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// run builds the plugin's service and runs it: the single-plugin path.
func run(opts *Options, flags *pflag.FlagSet, name string, build plugins.Build, stdout, stderr io.Writer) error {
	r, err := newRunner(opts, flags, name, stdout, stderr)
	if err != nil {
		return err
	}
	if err := r.add(name, name, build); err != nil {
		return err
	}
	return r.run()
}

func (r *runner) run() error {
	if r.inherited = daemon.Inheritance(); r.inherited != nil {
		// A replacement reports to the process it replaces, daemon or not.
		st, err := r.inherited.Status()
		if err != nil {
			return failure(err)
		}
		r.status = st
	} else if r.set.daemonize {
		if !daemon.IsChild() {
			// The starting command: everything was validated above, so
			// what is left to say comes from the daemon.
			return failure(daemon.Detach(r.set.startWait))
		}
		st, err := daemon.Attach()
		if err != nil {
			return failure(err)
		}
		r.status = st
	}

	// Signals are caught before any slow work, so a SIGTERM during start-up
	// is a clean stop rather than the default kill, and SIGUSR1 and SIGHUP
	// (whose default actions kill, leaving the pidfile) are safe as soon as
	// the log is open.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGHUP, sigReload)
	defer signal.Stop(sigs)
	// A closed stdout must not kill us with SIGPIPE; writes then fail instead.
	signal.Ignore(syscall.SIGPIPE)

	if r.set.umask >= 0 {
		syscall.Umask(r.set.umask)
	}
	if err := os.Chdir(r.set.rundir); err != nil {
		return r.early(fmt.Errorf("rundir %s: %w", r.set.rundir, bareErr(err)))
	}
	owner := -1
	if r.set.creds.Requested() && os.Geteuid() == 0 {
		owner = r.set.creds.UID
	}
	sink, err := logging.Open(logging.Config{
		File: r.set.logfile, MaxSizeMB: r.set.logMaxSize, MaxFiles: r.set.logMaxFiles,
		Syslog: r.set.syslog, Prefix: r.set.prefix, Owner: owner,
	}, r.stdout)
	if err != nil {
		return r.early(err)
	}
	r.sink = sink
	defer sink.Close()
	r.out.Set(sink)
	slog.SetDefault(r.log)
	prof, err := startProfiles(r.set, r.log)
	if err != nil {
		return r.startFailed(err)
	}
	defer prof.stop()
	defer paceHeap(r.log)()

	r.log.Info(fmt.Sprintf("twistd %s (%s %s) starting up", version(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH))
	r.log.Info(fmt.Sprintf("application %s, pid %d", r.name, os.Getpid()))
	// A log that took none of the lines so far is no log (--logfile
	// /dev/full): that is a start-up failure, not a daemon running blind.
	if err := sink.Failing(); err != nil {
		return r.early(err)
	}
	if r.metrics != nil {
		r.metrics.countLogFailures(sink.Lost)
	}
	if n, err := reactor.RaiseFileLimit(); err != nil {
		r.log.Warn(err.Error())
	} else {
		r.log.Info(fmt.Sprintf("descriptor limit %d", n))
		if w := fileLimitShort(n, r.set.maxConnections); w != "" {
			r.log.Warn(w)
		}
	}

	if owner >= 0 {
		// Give the log to the target user now, while we may: lumberjack
		// must rename and recreate it after the drop.
		if err := sink.Chown(r.set.creds.UID, r.set.creds.GID); err != nil {
			return r.startFailed(err)
		}
	}
	pid, err := r.takePidfile()
	if err != nil {
		return r.startFailed(err)
	}
	r.pid = pid
	defer func() { r.releasePidfile(r.pid) }()

	// Start-up runs beside the signal loop, so a SIGTERM while a service
	// is stuck starting abandons it instead of waiting.
	base := service.WithGrace(context.Background(), r.set.grace)
	if r.inherited != nil {
		base = reactor.WithAdopter(base, r.inherited.Socket)
	}
	ctx, abandon := context.WithCancelCause(base)
	defer abandon(nil)
	started := make(chan error, 1)
	go func() { started <- r.start(ctx) }()
	if err := r.awaitStart(sigs, started, abandon); err != nil {
		return err
	}
	if unused := r.inherited.CloseUnused(); len(unused) > 0 {
		r.log.Info(fmt.Sprintf("closed %d inherited socket(s) no service serves now: %v", len(unused), unused))
	}
	r.log.Info("started")
	r.ready()
	r.served = true
	r.health.ready.Store(true)
	stopWatchdog := r.watchdog()

	sig := r.serve(sigs)
	r.health.ready.Store(false)
	if sig != sigReload {
		r.log.Info(fmt.Sprintf("received %s, shutting down", signalName(sig)))
	}
	stopWatchdog()
	grace := r.set.grace
	if sig == sigReload {
		grace = r.handOver(r.handedTo, sigs)
	} else if _, err := daemon.Notify("STOPPING=1"); err != nil {
		r.log.Warn(err.Error())
	}
	return r.stop(sigs, grace)
}

// serve is the lifecycle loop while the services run: it reopens the log
// on its signals, answers health pings, runs reloads, and returns the
// signal that asks for a stop (sigReload once a replacement took over).
func (r *runner) serve(sigs <-chan os.Signal) os.Signal {
	var reloading <-chan reloadResult
	var stopAfter os.Signal // a stop asked for while a reload runs
	for {
		select {
		case res := <-reloading:
			reloading = nil
			if res.err == nil {
				r.handedTo = res.pid
				return sigReload
			}
			if stopAfter != nil {
				return stopAfter
			}
		case sig := <-sigs:
			if sig == sigReload {
				if reloading != nil {
					r.log.Warn("received SIGUSR2 during a reload; ignored")
					continue
				}
				r.log.Info("received SIGUSR2, reloading")
				reloading = r.startReload()
				continue
			}
			if !r.reopens(sig) {
				if reloading != nil {
					// The replacement holds our sockets and pidfile: let
					// the attempt end first (within --start-timeout).
					r.log.Info(fmt.Sprintf("received %s during a reload; stopping once it ends", signalName(sig)))
					stopAfter = sig
					continue
				}
				return sig
			}
			if stallHook && sig == syscall.SIGUSR1 {
				select {} // a lifecycle loop stuck for good, for the tests of health
			}
			r.reopenLog(sig)
		case reply := <-r.health.ping:
			r.health.answer(reply)
		}
	}
}

// stallHook (TWISTD_TESTHOOK_STALL=1) makes SIGUSR1 block the lifecycle
// loop for ever, so tests can see /healthz and the watchdog notice.
var stallHook = os.Getenv("TWISTD_TESTHOOK_STALL") == "1"

// start binds every listener, confines the process and starts the
// services: everything between taking the pidfile and being ready.
func (r *runner) start(ctx context.Context) error {
	if err := r.root.PrivilegedStart(ctx); err != nil {
		return err
	}
	if err := r.confine(); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.set.grace)
		defer cancel()
		return errors.Join(err, r.root.Stop(stopCtx))
	}
	// The process now runs as the user it keeps (see logging.Sink).
	if err := r.sink.StartRotation(); err != nil {
		r.log.Warn("log file: " + err.Error())
	}
	return r.root.Start(ctx)
}

// awaitStart waits for start to finish. A stop signal meanwhile abandons
// it: the services already started are stopped under --grace (the
// collection unwinds itself once the stuck Start returns; a Start that
// never returns is left behind when the process exits).
func (r *runner) awaitStart(sigs <-chan os.Signal, started <-chan error, abandon context.CancelCauseFunc) error {
	for {
		select {
		case err := <-started:
			if err != nil {
				return r.startFailed(err)
			}
			return nil
		case reply := <-r.health.ping:
			r.health.answer(reply)
		case sig := <-sigs:
			if r.reopened(sig) {
				continue
			}
			why := fmt.Errorf("start-up abandoned: received %s", signalName(sig))
			r.log.Warn(why.Error() + "; stopping what was started")
			abandon(why)
			select {
			case <-started:
			case <-time.After(r.set.grace):
				ctx, cancel := context.WithTimeout(context.Background(), r.set.grace)
				r.root.Stop(ctx)
				cancel()
			}
			return r.startFailed(why)
		}
	}
}

// takePidfile claims the pidfile (nil when disabled) and, when privileges
// will be dropped, gives it to the target user so the daemon can still
// rewrite it.
func (r *runner) takePidfile() (*daemon.Pidfile, error) {
	r.info = daemon.Info{Pid: os.Getpid(), Runs: r.runs, Started: time.Now(), Version: version()}
	if r.inherited != nil {
		// The lock came with the descriptor: nobody could take it between.
		pid, err := r.inherited.Pidfile()
		if err != nil || pid == nil {
			return pid, err
		}
		if r.set.pidfile != "" && pid.Path() != r.set.pidfile {
			r.log.Warn(fmt.Sprintf("keeping the pidfile %s handed over; --pidfile %s takes effect at the next start", pid.Path(), r.set.pidfile))
		}
		// The pidfile and record name this process once it is ready
		// (ready), so stop and status never find a replacement that may
		// still fail.
		return pid, nil
	}
	if r.set.pidfile == "" {
		return nil, nil
	}
	pid, err := daemon.Acquire(r.set.pidfile, 0o644)
	if err != nil {
		return nil, err
	}
	if pid.Previous != "" {
		r.log.Warn(fmt.Sprintf("replaced pidfile %s holding %s", pid.Path(), pid.Previous))
	}
	if err := pid.Record(r.info); err != nil {
		r.log.Warn(err.Error() + "; twistd status will not say what runs")
	}
	if r.set.creds.Requested() && os.Geteuid() == 0 {
		if err := pid.Chown(r.set.creds.UID, r.set.creds.GID); err != nil {
			pid.Release()
			return nil, err
		}
	}
	return pid, nil
}

func (r *runner) releasePidfile(pid *daemon.Pidfile) {
	if r.inherited != nil && !r.served {
		// A replacement that failed: the pidfile is still the old
		// process's, which goes on serving.
		pid.Abandon()
		return
	}
	if err := pid.Release(); err != nil {
		r.log.Warn(err.Error())
	}
}

// confine applies --chroot and then --uid/--gid, after every listener is
// bound and before any service starts.
func (r *runner) confine() error {
	if dir := r.set.chroot; dir != "" {
		if err := daemon.Chroot(dir); err != nil {
			return err
		}
		// The log is inside the jail (checked at start-up); from now on it
		// is reopened by its path inside it. The pidfile is removed through
		// the directory it holds open.
		if p := r.sink.Path(); p != "" {
			if err := r.sink.Rebase(inJail(dir, p)); err != nil {
				return fmt.Errorf("log file after chroot: %w", err)
			}
		}
		r.log.Info("chroot " + dir)
	}
	c := r.set.creds
	if !c.Requested() {
		return nil
	}
	warning, err := c.Drop()
	if err != nil {
		return fmt.Errorf("cannot drop privileges to %s: %w", c, err)
	}
	if warning != "" {
		r.log.Warn(warning)
	}
	what := "set"
	if c.Effective {
		what = "set effective"
	}
	r.log.Info(fmt.Sprintf("%s %s, groups %v", what, c, c.Groups))
	// Say now, not at shutdown, what the dropped daemon will not manage.
	if p := r.set.pidfile; p != "" && !daemon.DirWritable(pathNow(r.set.chroot, p)) {
		r.log.Warn(fmt.Sprintf("the directory of %s is not writable by %s: the pidfile will be left behind (unlocked, so stale) at exit", p, c))
	}
	if p := r.sink.Path(); p != "" && !daemon.DirWritable(p) {
		r.log.Warn(fmt.Sprintf("the directory of %s is not writable by %s: rotation and reopen on SIGUSR1 will fail", p, c))
	}
	return nil
}

// ready tells whoever waits that every service runs: the starting command
// through the status pipe and systemd through NOTIFY_SOCKET.
func (r *runner) ready() {
	if r.inherited != nil && r.pid != nil {
		r.info.Reloaded = time.Now()
		r.info.LastReload = &daemon.ReloadResult{Pid: os.Getpid()}
		if err := errors.Join(r.pid.Rewrite(), r.pid.Record(r.info)); err != nil {
			r.log.Warn("pidfile after the reload: " + err.Error())
		}
	}
	if r.status != nil {
		// From now on the daemon's stderr is its log file (a crash trace
		// is kept) or /dev/null, never the parent's pipe.
		f, _ := r.sink.OpenAppend()
		if err := r.status.Ready(f); err != nil {
			r.log.Warn("reporting ready: " + err.Error())
		}
		if f != nil {
			f.Close()
		}
	}
	state := "READY=1\nSTATUS=serving " + r.name
	if r.inherited != nil {
		// The service's main process is this one now (the units allow it
		// with NotifyAccess=all); the replaced one sent RELOADING=1.
		state = fmt.Sprintf("MAINPID=%d\n", os.Getpid()) + state
	}
	if _, err := daemon.Notify(state); err != nil {
		r.log.Warn(err.Error())
	}
}

// watchdog pings systemd's watchdog while the services run; the returned
// func stops it and waits for it.
func (r *runner) watchdog() func() {
	every := daemon.WatchdogInterval()
	if every <= 0 {
		return func() {}
	}
	r.log.Info(fmt.Sprintf("systemd watchdog: pinging every %v", every))
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// Only a lifecycle loop that answers is well: a stuck one
				// stops the pings, and systemd restarts the service.
				if !r.health.alive(every / 2) {
					r.log.Warn("lifecycle loop does not answer; not pinging the systemd watchdog")
					continue
				}
				if _, err := daemon.Notify("WATCHDOG=1"); err != nil {
					r.log.Warn(err.Error())
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// reopens reports whether sig asks to reopen the log: SIGUSR1 always;
// SIGHUP in a daemon, as logrotate scripts and daemons conventionally
// use it. In the foreground SIGHUP means the terminal went away, so it
// stops the program like SIGTERM.
func (r *runner) reopens(sig os.Signal) bool {
	return sig == syscall.SIGUSR1 || sig == syscall.SIGHUP && r.status != nil
}

// reopened reopens the log if sig asks for it and reports whether it did:
// the loops that wait on signals take it in passing.
func (r *runner) reopened(sig os.Signal) bool {
	if !r.reopens(sig) {
		return false
	}
	r.reopenLog(sig)
	return true
}

// reopenLog handles SIGUSR1 (and a daemon's SIGHUP): lines after it go to
// a file opened afresh at the log path, so logrotate's move-then-signal
// loses nothing.
func (r *runner) reopenLog(sig os.Signal) {
	name := signalName(sig)
	if r.metrics != nil {
		r.metrics.logReopens.Inc()
	}
	ok, err := r.sink.Reopen()
	if err != nil {
		r.log.Warn(name + ": closing the log file: " + err.Error())
	}
	if !ok {
		r.log.Info("received " + name + "; not logging to a file, nothing to reopen")
		return
	}
	// This line opens the new file.
	r.log.Info("received " + name + ", reopened log file " + r.sink.Path())
	if r.status != nil {
		if f, err := r.sink.OpenAppend(); err == nil {
			daemon.Redirect(f)
			f.Close()
		}
	}
}

// stop stops the tree within grace; a second signal cuts it short.
func (r *runner) stop(sigs <-chan os.Signal, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	stopped := make(chan struct{})
	forcedBy := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case reply := <-r.health.ping:
				r.health.answer(reply)
			case s := <-sigs:
				if r.reopened(s) {
					continue
				}
				r.log.Warn(fmt.Sprintf("received %s again, closing everything now", signalName(s)))
				forcedBy <- s
				cancel()
				return
			case <-stopped:
				return
			}
		}
	}()
	err := r.root.Stop(ctx)
	close(stopped)
	select {
	case s := <-forcedBy:
		r.log.Info("shut down (forced)")
		return failure(fmt.Errorf("shutdown forced by a second %s", signalName(s)))
	default:
	}
	if err != nil {
		r.log.Info("shut down with errors")
		return failure(err)
	}
	r.log.Info("shut down")
	return nil
}

// early reports a failure that happened before the log was open.
func (r *runner) early(err error) error {
	msg := oneLine(err)
	r.status.Fail(msg)
	return failure(errors.New(msg))
}

func (r *runner) startFailed(err error) error {
	msg := oneLine(err)
	r.log.Error("start-up failed: " + msg)
	r.log.Info("shut down")
	r.status.Fail(msg)
	return failure(errors.New(msg))
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func signalName(s os.Signal) string {
	if ss, ok := s.(syscall.Signal); ok {
		switch ss {
		case syscall.SIGINT:
			return "SIGINT"
		case syscall.SIGTERM:
			return "SIGTERM"
		case syscall.SIGUSR1:
			return "SIGUSR1"
		case syscall.SIGHUP:
			return "SIGHUP"
		}
	}
	return s.String()
}

// fileLimitShort returns the warning for a descriptor limit that cannot
// hold maxConns connections beside what the reactor reserves for the rest
// of the process (reactor.FDReserve), or "" when it can or there
// is no --max-connections. Without the warning the shortfall shows only
// under load, as accept failures long after start-up.
func fileLimitShort(limit uint64, maxConns int) string {
	need := uint64(maxConns) + reactor.FDReserve
	if maxConns <= 0 || limit >= need {
		return ""
	}
	return fmt.Sprintf("descriptor limit %d is below the %d that --max-connections %d needs (%d for the process itself); raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower --max-connections", limit, need, maxConns, reactor.FDReserve)
}
