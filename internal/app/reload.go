package app

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
)

// A reload (SIGUSR2, `twistd reload`) replaces the running process with a
// fresh one started from the binary now on disk, with the same arguments:
// it re-reads the application file and validates everything as a start
// does. The replacement adopts the listening sockets and the locked
// pidfile (package daemon, handover.go) and reports ready on a status
// pipe; only then does this process stop accepting, let its connections
// in flight finish under --grace and exit 0. A replacement that fails
// leaves this process serving as before.

// origin is how this process was started, for its replacement: the
// executable's path (a package upgrade replaces the file there), the
// arguments and the working directory before the chdir to --rundir.
type origin struct {
	exe  string
	args []string
	dir  string
}

func startedAs() origin {
	exe, _ := os.Executable()
	dir, _ := os.Getwd()
	return origin{exe: exe, args: os.Args, dir: dir}
}

// reloadResult is what a reload attempt ended with.
type reloadResult struct {
	pid int   // the replacement, when it is ready
	err error // *daemon.ReplaceError otherwise
}

// handable services hand sockets to a replacement (reactor ports and the
// metrics endpoint).
type handable interface {
	Sockets() []reactor.Socket
	HandOver()
	Busy() int // clients still served
}

// handables lists the services of the tree that hold sockets.
func handables(s service.Service) []handable {
	var out []handable
	if h, ok := s.(handable); ok {
		out = append(out, h)
	}
	if c, ok := s.(service.Container); ok {
		for _, k := range c.Services() {
			out = append(out, handables(k)...)
		}
	}
	return out
}

// startReload begins a reload in the background; its result arrives on
// the returned channel. The lifecycle loop keeps answering meanwhile.
func (r *runner) startReload() <-chan reloadResult {
	done := make(chan reloadResult, 1)
	asked := time.Now()
	r.recordReload(&daemon.ReloadResult{Asked: asked}, true)
	if _, err := daemon.Notify("RELOADING=1"); err != nil {
		r.log.Warn(err.Error())
	}
	fail := func(err error) {
		r.log.Error("reload failed: " + oneLine(err) + "; still serving")
		res := &daemon.ReloadResult{Asked: asked, Error: oneLine(err), Code: ExitFailure}
		var re *daemon.ReplaceError
		if errors.As(err, &re) {
			res.Code = re.Code
		}
		// The replacement may have written its pid before it failed.
		if err := r.pid.Rewrite(); err != nil {
			r.log.Warn(err.Error())
		}
		r.recordReload(res, false)
		daemon.Notify("READY=1\nSTATUS=serving " + r.name)
		done <- reloadResult{err: err}
	}
	if r.set.chroot != "" {
		fail(errors.New("a chrooted daemon cannot reload: the binary is outside the jail; restart it"))
		return done
	}
	var socks []daemon.Socket
	for _, h := range handables(r.root) {
		for _, s := range h.Sockets() {
			raw, err := s.Conn.SyscallConn()
			if err != nil {
				fail(fmt.Errorf("socket of %s: %w", s.Key, err))
				return done
			}
			raw.Control(func(fd uintptr) { socks = append(socks, daemon.Socket{Key: s.Key, FD: int(fd)}) })
		}
	}
	r.log.Info(fmt.Sprintf("reloading: starting %s with %d socket(s)", r.origin.exe, len(socks)))
	go func() {
		pid, err := daemon.Replace(r.origin.exe, r.origin.args, r.origin.dir, r.pid, socks, r.set.startWait)
		if err != nil {
			fail(err)
			return
		}
		done <- reloadResult{pid: pid}
	}()
	return done
}

// recordReload notes a reload in the daemon record for `twistd reload`.
func (r *runner) recordReload(res *daemon.ReloadResult, inProgress bool) {
	if r.pid == nil {
		return
	}
	r.info.Reloading = inProgress
	r.info.LastReload = res
	if err := r.pid.UpdateRecord(r.info); err != nil {
		r.log.Warn("daemon record: " + err.Error())
	}
}

// handOver gives up what the replacement took: the pidfile and its lock
// stay as they are (the replacement owns them), and every port stops
// accepting without draining the listen queue it now shares.
// Then the connections in flight (downloads, chat and FTP sessions) go on
// until they end or --grace runs out; the stop that follows closes what is
// left the way a shutdown does. It returns the grace left for that stop.
func (r *runner) handOver(pid int, sigs <-chan os.Signal) time.Duration {
	r.pid.Abandon()
	r.pid = nil
	hs := handables(r.root)
	for _, h := range hs {
		h.HandOver()
	}
	r.log.Info(fmt.Sprintf("reloaded: pid %d serves now; letting the connections in flight finish (up to %v)", pid, r.set.grace))
	// The last slice of the grace is the stop's, so what is left closes
	// the way a shutdown closes it (FTP's 421, chat's flush) rather than
	// being aborted.
	reserve := min(max(r.set.grace/10, 100*time.Millisecond), time.Second, r.set.grace)
	deadline := time.Now().Add(r.set.grace - reserve)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := 0
		for _, h := range hs {
			busy += h.Busy()
		}
		if busy == 0 {
			return time.Until(deadline) + reserve
		}
		select {
		case <-tick.C:
			if time.Now().After(deadline) {
				r.log.Info(fmt.Sprintf("grace period nearly over with %d connection(s) left; closing them", busy))
				return reserve
			}
		case reply := <-r.health.ping:
			r.health.answer(reply)
		case s := <-sigs:
			if r.reopened(s) {
				continue
			}
			r.log.Info(fmt.Sprintf("received %s; closing the %d connection(s) left now", signalName(s), busy))
			return 0
		}
	}
}

// sigReload is the signal that asks a daemon to reload (nginx's binary
// upgrade signal).
const sigReload = syscall.SIGUSR2
