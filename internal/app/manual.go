package app

// Manual is the DESCRIPTION of the twistd(1) man page (markdown; a "#"
// heading starts a man section). cmd/gen-man puts it in the page.
const Manual = `**twistd** runs a compiled-in network plugin as a Unix daemon, or in the
foreground with **--nodaemon**. Runner options go before the plugin name,
the plugin's options after it: **twistd -n fastpoetry --port 10000 --poem poem.txt**.

Start-up follows one path: check the options and build the plugin's
services (mistakes stop here, exit 2); detach unless **--nodaemon** (the
starting command waits and exits with the daemon's verdict: 0 once every
service runs, 1 with the daemon's one-line error otherwise, or when it
gives up after **--start-timeout**); open the log; lock and write the
pidfile; bind every listener as the starting user; **--chroot**; switch to
**--uid**/**--gid**; start the services; report ready (also to systemd).

# SIGNALS
**SIGTERM**, **SIGINT**: stop accepting, let connections finish for up to
**--grace**, stop the services in reverse order, remove the pidfile, exit 0.
A second signal closes everything at once (exit 1).
**SIGUSR1**: reopen the log file by name (after logrotate moved it).
**SIGHUP**: the same as SIGUSR1 in a daemon; with **--nodaemon** (the
terminal went away) the same as SIGTERM.

# FILES
**twistd.pid** in the run directory (**--pidfile**): the daemon's pid and a
newline. The daemon holds an exclusive **flock**(2) on it while it runs; a
file nobody has locked is stale and is replaced at the next start.

**twistd.log** in the run directory (**--logfile**), daemon mode only:
rotated at **--logfile-max-size** MiB into twistd-TIMESTAMP.log files.
With **--uid**, the log and pidfile are given to that user before the
switch; the daemon can rotate and reopen its log and remove its pidfile
only if that user may write their directories.

# ENVIRONMENT
**NOTIFY_SOCKET**, **WATCHDOG_USEC**: systemd notification (READY=1,
STOPPING=1, WATCHDOG=1). **LISTEN_FDS**, **LISTEN_PID**, **LISTEN_FDNAMES**:
sockets passed by systemd, served by the endpoint
**systemd:name=NAME** (the unit's FileDescriptorName=) or
**systemd:domain=INET:index=N**.
**JOURNAL_STREAM**: when stdout is the journal, lines carry a syslog
priority prefix instead of a timestamp.

# EXIT STATUS
0 success; 1 runtime failure (start-up failed, stop timed out); 2 usage
error (unknown plugin or flag, bad value).
`
