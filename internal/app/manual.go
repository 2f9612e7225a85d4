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
**GOGC**, **GOMEMLIMIT**: Go's collector settings; either one turns off
twistd's heap pacing, which otherwise lowers the collector's percentage
(to 10, keeping at least 2 MiB of headroom) while collection is idle and
raises it back while it costs CPU.

# METRICS
With **--metrics ENDPOINT** twistd serves over HTTP: **/metrics** in the
Prometheus text format (OpenMetrics when the scraper asks for it),
**/healthz** (200 while the lifecycle loop answers, else 503) and
**/readyz** (200 from ready until a shutdown begins, else 503). These names
are a stable contract. Every series of a service carries
**service**=NAME, the plugin's name or the service's name in an application
file; no label holds a peer address or a user.

The runner: **twistd_build_info**{version,goversion} (always 1),
**twistd_start_time_seconds**, **twistd_log_reopens_total**,
**twistd_log_write_errors_total**; the Go and process collectors
(**go_goroutines**, **process_resident_memory_bytes**, ...).

Each listening service: **twistd_connections_accepted_total**,
**twistd_connections_open**, **twistd_connections_waiting** (parked by
**--max-connections**), **twistd_connections_rejected_total**{reason}
(queue_full, hung_up, shutdown), **twistd_bytes_received_total**,
**twistd_bytes_sent_total**, **twistd_connection_duration_seconds**
(histogram).

chat: **twistd_chat_users_online**,
**twistd_chat_frames_received_total**{command} (verify, single, group,
broadcast, heartbeat, unknown), **twistd_chat_messages_delivered_total**,
**twistd_chat_deliveries_failed_total**{reason} (offline, queue_full,
closing), **twistd_chat_heartbeat_timeouts_total**; with **--redis** also
**twistd_chat_redis_up**, **twistd_chat_redis_publishes_total**,
**twistd_chat_remote_messages_total**.

ftp-lite: **twistd_ftp_sessions_open**, **twistd_ftp_logins_total**{result}
(success, anonymous, failure, refused),
**twistd_ftp_transfers_total**{direction,result} (download, upload;
complete, aborted, failed), **twistd_ftp_transfer_bytes_total**{direction}.

# EXIT STATUS
0 success; 1 runtime failure (start-up failed, stop timed out); 2 usage
error (unknown plugin or flag, bad value).
`
