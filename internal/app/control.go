package app

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/twistd-go/twistd/internal/app/appfile"
	"github.com/twistd-go/twistd/internal/app/daemon"
)

// ExitUnknown is LSB's "status unknown" for `status` and "insufficient
// privilege" for `stop`: the pidfile could not be read or the process
// could not be signalled.
const ExitUnknown = 4

// commandUsage is the help of the runner's own commands (check, stop,
// status); the root's template lists plugins instead.
const commandUsage = `Usage:
  twistd [runner options] {{.Use}} [options]
{{with .Long}}
{{.}}
{{end}}
Options of {{.Name}}:
{{.LocalFlags.FlagUsages}}`

const controlHelp = `The pidfile is --pidfile here, or the runner's --pidfile and --rundir
given before the command (twistd --rundir /srv/poetry stop), or those of an
application file (twistd -y app.toml stop); by default twistd.pid in the
current directory. A daemon holds a lock on its pidfile for its whole life:
a pidfile nobody holds is stale.
`

// stopCommand is `twistd stop`: SIGTERM the daemon named by the pidfile
// and wait until it has exited and its pidfile is gone. Exit codes follow
// LSB init scripts: 0 stopped (with --kill: also when SIGKILL ended it),
// or was not running (no pidfile, or a stale one, which is removed); 1
// still running after --timeout; 4 the pidfile cannot be read, is not a
// pidfile, or the process cannot be signalled (permissions).
func stopCommand(opts *Options, stdout, stderr io.Writer) *cobra.Command {
	var pidfile, rundir string
	var timeout time.Duration
	var kill bool
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "stop the daemon named by a pidfile",
		Long: `Sends SIGTERM to the daemon named by the pidfile and waits until it has
exited and its pidfile is gone, then says how long that took. Past
--timeout it says so and exits 1; with --kill it then sends SIGKILL.

` + controlHelp + `
Exit codes (LSB): 0 stopped (with --kill, also when SIGKILL ended it), or
not running (no pidfile; a stale pidfile is removed); 1 did not stop
within --timeout; 4 the pidfile could not be read, is not a pidfile (it is
then left untouched), or the process could not be signalled.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := controlPidfile(opts, cmd, pidfile, rundir)
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErrorf("stop: --timeout must be positive")
			}
			return stop(path, timeout, kill, stdout)
		},
	}
	controlFlags(cmd, &pidfile, &rundir)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the daemon to exit")
	cmd.Flags().BoolVar(&kill, "kill", false, "send SIGKILL when --timeout has passed")
	cmd.SetUsageTemplate(commandUsage)
	return cmd
}

// reloadCommand is `twistd reload`: SIGUSR2 to the daemon, then wait for
// the outcome it records beside its pidfile.
func reloadCommand(opts *Options, stdout, stderr io.Writer) *cobra.Command {
	var pidfile, rundir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "replace the daemon with a fresh process, without refusing a client",
		Long: `Asks the daemon named by the pidfile to reload (SIGUSR2): it starts the
binary now on disk with its original arguments, which re-reads the
application file and validates everything as a start does. The new
process adopts every listening socket and the locked pidfile; once it
reports ready the old one stops accepting, finishes its connections in
flight under --grace and exits. Long-lived sessions (chat, FTP control
connections) stay on the old process until they end or --grace runs out;
clients then reconnect to the new one. If the new process fails, the old
one serves on unchanged and this command prints the new one's error.

` + controlHelp + `
Exit codes: 0 reloaded; 1 the replacement failed, or no daemon runs; 2 the
replacement refused its application file or options; 4 the pidfile could
not be read or the process not signalled.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := controlPidfile(opts, cmd, pidfile, rundir)
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErrorf("reload: --timeout must be positive")
			}
			return reload(path, timeout, stdout)
		},
	}
	controlFlags(cmd, &pidfile, &rundir)
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "how long to wait for the outcome (the daemon's --start-timeout bounds the new process)")
	cmd.SetUsageTemplate(commandUsage)
	return cmd
}

func reload(path string, timeout time.Duration, stdout io.Writer) error {
	state, pid, err := daemon.Probe(path)
	if err != nil {
		return withCode(ExitUnknown, err)
	}
	switch {
	case state == daemon.Absent:
		return failure(fmt.Errorf("nothing to reload: no pidfile %s (twistd is not running)", path))
	case state == daemon.Stale:
		return failure(fmt.Errorf("nothing to reload: the pidfile %s is %s", path, staleWhy(pid)))
	case pid == 0:
		return failure(fmt.Errorf("nothing to reload yet: pidfile %s names no pid (twistd is starting)", path))
	}
	if info, ok := daemon.ReadInfo(path, pid); ok && info.Reloading {
		return failure(fmt.Errorf("pid %d is already reloading (asked at %s)", pid, info.LastReload.Asked.Format(time.RFC3339)))
	}
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return withCode(ExitUnknown, fmt.Errorf("cannot signal pid %d: %v", pid, err))
	}
	deadline := start.Add(timeout)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if now, err := daemon.ReadPidfile(path); err == nil && now != pid {
			if info, ok := daemon.ReadInfo(path, now); ok && !info.Reloaded.IsZero() {
				fmt.Fprintf(stdout, "reloaded twistd: pid %d serves now (was %d), in %.2fs\n", now, pid, time.Since(start).Seconds())
				return nil
			}
			continue
		}
		info, ok := daemon.ReadInfo(path, pid)
		if ok && !info.Reloading && info.LastReload != nil && !info.LastReload.Asked.Before(start.Add(-time.Second)) && info.LastReload.Error != "" {
			code := info.LastReload.Code
			if code != ExitUsage {
				code = ExitFailure
			}
			return &exitError{code: code, err: fmt.Errorf("reload failed, pid %d serves on: %s", pid, info.LastReload.Error), help: noHelp}
		}
		if !daemon.Alive(pid) {
			return failure(fmt.Errorf("pid %d exited during the reload", pid))
		}
	}
	return failure(fmt.Errorf("no outcome from pid %d after %v", pid, timeout))
}

// statusCommand is `twistd status`, with LSB's status exit codes.
func statusCommand(opts *Options, stdout, stderr io.Writer) *cobra.Command {
	var pidfile, rundir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "tell whether the daemon named by a pidfile runs",
		Long: `Says whether the daemon named by the pidfile runs and, if it does, its
pid, uptime and what it runs (plugin or application).

` + controlHelp + `
Exit codes (LSB): 0 running; 1 not running but the pidfile remains (stale);
3 not running; 4 unknown (the pidfile cannot be read, or is locked without
naming a live process).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := controlPidfile(opts, cmd, pidfile, rundir)
			if err != nil {
				return err
			}
			return status(path, stdout)
		},
	}
	controlFlags(cmd, &pidfile, &rundir)
	cmd.SetUsageTemplate(commandUsage)
	return cmd
}

// controlFlags declares --pidfile and --rundir of stop and status, which
// find the daemon as the runner options of the same names do.
func controlFlags(cmd *cobra.Command, pidfile, rundir *string) {
	cmd.Flags().StringVar(pidfile, "pidfile", "", "the daemon's pidfile (default: the runner's --pidfile, twistd.pid)")
	cmd.Flags().StringVarP(rundir, "rundir", "d", "", "the daemon's run directory, where a relative --pidfile is (default: the runner's --rundir, .)")
}

// controlPidfile finds the pidfile as the runner would: the command's own
// --pidfile and --rundir, else the runner's (from the command line or -y
// FILE), a relative pidfile in the run directory.
func controlPidfile(opts *Options, cmd *cobra.Command, local, localDir string) (string, error) {
	rootFlags := cmd.Root().Flags()
	if opts.Application != "" {
		app, err := appfile.Load(opts.Application)
		if app == nil {
			return "", withCode(ExitUsage, err)
		}
		if errs := applyRunnerSettings(app, rootFlags); len(errs) > 0 {
			return "", withCode(ExitUsage, errs)
		}
	}
	path := opts.Pidfile
	if cmd.Flags().Changed("pidfile") {
		path = local
	}
	if path == "" {
		return "", usageErrorf("%s: no pidfile (--pidfile '' disables it)", cmd.Name())
	}
	rundir := opts.Rundir
	if cmd.Flags().Changed("rundir") {
		rundir = localDir
	}
	if !filepath.IsAbs(path) {
		dir, err := filepath.Abs(rundir)
		if err != nil {
			return "", failure(err)
		}
		path = filepath.Join(dir, path)
	}
	return path, nil
}

// errQuiet carries an exit code whose message was already printed on
// stdout.
var errQuiet = errors.New("")

func status(path string, stdout io.Writer) error {
	state, pid, err := daemon.Probe(path)
	if err != nil {
		return withCode(ExitUnknown, err)
	}
	switch state {
	case daemon.Absent:
		fmt.Fprintf(stdout, "twistd is not running (no pidfile %s)\n", path)
		return withCode(ExitNotRunning, errQuiet)
	case daemon.Stale:
		fmt.Fprintf(stdout, "twistd is not running, but its pidfile %s remains (%s)\n", path, staleWhy(pid))
		return withCode(ExitFailure, errQuiet)
	}
	if pid == 0 {
		fmt.Fprintf(stdout, "twistd is starting (pidfile %s is locked and names no pid yet)\n", path)
		return nil
	}
	up, err := daemon.Uptime(pid)
	if err != nil {
		return withCode(ExitUnknown, fmt.Errorf("pidfile %s is locked but names pid %d: %v", path, pid, err))
	}
	runs := "what it runs is not recorded"
	if info, ok := daemon.ReadInfo(path, pid); ok {
		runs = info.Runs
		if !info.Reloaded.IsZero() {
			runs += fmt.Sprintf(", reloaded %s ago", time.Since(info.Reloaded).Round(time.Second))
		}
	}
	fmt.Fprintf(stdout, "twistd is running: pid %d, up %s, %s\n", pid, up.Round(time.Second), runs)
	return nil
}

func staleWhy(pid int) string {
	switch {
	case pid == 0:
		return "stale: it names no pid"
	case daemon.Alive(pid):
		return fmt.Sprintf("stale: pid %d runs but is not the daemon that wrote it", pid)
	}
	return fmt.Sprintf("stale: pid %d does not exist", pid)
}

func stop(path string, timeout time.Duration, kill bool, stdout io.Writer) error {
	start := time.Now()
	deadline := start.Add(timeout)
	state, pid, err := daemon.Probe(path)
	// A daemon that has locked its pidfile but not written it yet is
	// moments from naming itself.
	for err == nil && state == daemon.Live && pid == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		state, pid, err = daemon.Probe(path)
	}
	if err != nil {
		return withCode(ExitUnknown, err)
	}
	switch state {
	case daemon.Absent:
		fmt.Fprintf(stdout, "twistd is not running (no pidfile %s)\n", path)
		return nil
	case daemon.Stale:
		why := staleWhy(pid)
		if _, err := daemon.RemoveStale(path); err != nil {
			return withCode(ExitUnknown, fmt.Errorf("not running, but cannot remove the stale pidfile: %w", err))
		}
		fmt.Fprintf(stdout, "twistd is not running; removed its pidfile %s (%s)\n", path, why)
		return nil
	}
	if pid == 0 {
		return failure(fmt.Errorf("pidfile %s is locked but names no pid after %v", path, timeout))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return withCode(ExitUnknown, fmt.Errorf("cannot signal pid %d: %v", pid, err))
		}
		return failure(fmt.Errorf("pidfile %s is locked but pid %d: %v", path, pid, err))
	}
	if waitGone(path, pid, deadline) {
		fmt.Fprintf(stdout, "stopped twistd (pid %d) in %.2fs\n", pid, time.Since(start).Seconds())
		return leftBehind(path, stdout)
	}
	if !kill {
		return failure(fmt.Errorf("pid %d still running %v after SIGTERM (--kill sends SIGKILL)", pid, timeout))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return withCode(ExitUnknown, fmt.Errorf("cannot kill pid %d: %v", pid, err))
	}
	// SIGKILL cannot be caught: the process is gone as soon as the kernel
	// has torn it down.
	if !waitGone(path, pid, time.Now().Add(10*time.Second)) {
		return failure(fmt.Errorf("pid %d did not stop within %v after SIGTERM, and still runs after SIGKILL", pid, timeout))
	}
	// Gone is what was asked for, as start-stop-daemon --retry counts it.
	fmt.Fprintf(stdout, "killed twistd (pid %d) with SIGKILL: it did not stop within %v after SIGTERM\n", pid, timeout)
	return leftBehind(path, stdout)
}

// waitGone polls until pid has exited and the pidfile is no longer held,
// or until deadline. The daemon is not our child: there is nothing to wait
// on but its pid and its lock.
func waitGone(path string, pid int, deadline time.Time) bool {
	for {
		state, _, err := daemon.Probe(path)
		if err == nil && state != daemon.Live && !daemon.Alive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leftBehind removes a pidfile the stopped daemon could not remove (it had
// dropped privileges, or was killed).
func leftBehind(path string, stdout io.Writer) error {
	if state, _, _ := daemon.Probe(path); state != daemon.Stale {
		return nil
	}
	removed, err := daemon.RemoveStale(path)
	if err != nil {
		return withCode(ExitUnknown, fmt.Errorf("stopped, but cannot remove its pidfile: %w", err))
	}
	if removed {
		fmt.Fprintf(stdout, "removed the pidfile %s it left behind\n", path)
	}
	return nil
}
