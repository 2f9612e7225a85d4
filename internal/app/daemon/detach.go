package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	godaemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"
)

// The child reports its verdict to the waiting parent as one of these
// lines on its stdout, which is the status pipe until the verdict is given.
const (
	statusReady = "twistd-status: ready"
	statusError = "twistd-status: error: "
)

// IsChild reports whether this process is the detached daemon started by
// Detach, which must call Attach.
func IsChild() bool { return godaemon.WasReborn() }

// Detach runs in the parent: it re-executes this binary with the same
// arguments as a detached child (new session, stdin /dev/null) and waits
// for the child's verdict. It returns nil once the child reports ready,
// the child's own one-line error if it reports a failure, and an error
// saying so if the child exits without a verdict or gives none within
// timeout.
//
// go-daemon hands the child fixed fds (0 pipe, 1+2 "log file", 3
// /dev/null), so the status pipe travels in the log-file slot: the child's
// stdout and stderr are the pipe's write end until it reports, and a crash
// trace printed before that reaches the parent too.
func Detach(timeout time.Duration) error {
	if err := closeInheritedOnExec(); err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	defer r.Close()
	ctx := &godaemon.Context{LogFileName: fmt.Sprintf("/proc/self/fd/%d", w.Fd()), LogFilePerm: 0o600}
	child, err := ctx.Reborn()
	w.Close() // now only the child holds the write end: its exit is our EOF
	if err != nil {
		// go-daemon v0.1.6 may fail its second write into the child's
		// stdin with EPIPE after the child has already read its context
		// (upstream issue #86): the child did start, so wait for it.
		if child == nil || !errors.Is(err, syscall.EPIPE) {
			if child != nil {
				child.Kill()
				child.Wait()
			}
			return fmt.Errorf("daemonize: %w", err)
		}
	}
	return waitVerdict(child, r, timeout)
}

// closeInheritedOnExec marks every descriptor past stderr close-on-exec,
// so the daemon does not carry what our caller left open by accident
// (daemon(7): close all but 0, 1 and 2). A daemon holding the write end of
// its caller's pipe would keep the caller waiting for EOF for as long as it
// runs. Go opens its own descriptors close-on-exec already; the ones the
// re-exec hands the child are duplicated onto fixed numbers regardless.
func closeInheritedOnExec() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Kernels before 5.11: one fcntl per open descriptor.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The directory's own descriptor is gone by now: EBADF is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return err
		}
	}
	return nil
}

func waitVerdict(child *os.Process, r *os.File, timeout time.Duration) error {
	type line struct {
		s   string
		eof bool
	}
	lines := make(chan line, 16)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			lines <- line{s: sc.Text()}
		}
		lines <- line{eof: true}
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var said []string // anything else the child printed, e.g. a panic
	for {
		select {
		case l := <-lines:
			switch {
			case l.eof:
				return exitedEarly(child, said)
			case l.s == statusReady:
				child.Release()
				return nil
			case strings.HasPrefix(l.s, statusError):
				child.Wait()
				return errors.New(strings.TrimPrefix(l.s, statusError))
			case strings.TrimSpace(l.s) != "" && len(said) < 20:
				said = append(said, strings.TrimSpace(l.s))
			}
		case <-deadline.C:
			pid := child.Pid
			child.Release()
			return fmt.Errorf("daemon (pid %d) not ready after %v; stopped waiting (it may still be starting: see its log, or stop it with kill %d)", pid, timeout, pid)
		}
	}
}

// exitedEarly describes a child that closed the status pipe without a
// verdict: it crashed, was killed, or exited before reporting.
func exitedEarly(child *os.Process, said []string) error {
	done := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := child.Wait()
		done <- st
	}()
	how := "closed its status pipe"
	select {
	case st := <-done:
		if st != nil {
			how = "exited (" + st.String() + ")"
		}
	case <-time.After(5 * time.Second):
	}
	msg := fmt.Sprintf("daemon (pid %d) %s before it was ready", child.Pid, how)
	if len(said) > 0 {
		msg += "; it printed: " + said[0]
	}
	return errors.New(msg)
}

// Status is the child's end of the status pipe.
type Status struct {
	done     bool
	null     *os.File // opened before a chroot, which may have no /dev/null
	handover bool     // a replacement's: the pipe is fd 2, our stderr waits on fd 3
}

// Attach runs in the detached child: it completes go-daemon's hand-over
// and returns the status reporter. It also removes what the child must not
// pass on: the re-exec marker in the environment (a later copy of twistd
// would think it is a daemon child) and the spare /dev/null on fd 3.
func Attach() (*Status, error) {
	ctx := &godaemon.Context{}
	if _, err := ctx.Reborn(); err != nil {
		return nil, fmt.Errorf("daemonize (child): %w", err)
	}
	os.Unsetenv(godaemon.MARK_NAME)
	syscall.Close(3)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("daemonize (child): %w", err)
	}
	return &Status{null: null}, nil
}

// Ready tells the parent that the daemon runs, then points stdout and
// stderr at out (the log file, so a later crash trace is kept) or
// /dev/null: once the parent exits, writing to the pipe would fail.
func (s *Status) Ready(out *os.File) error {
	return s.report(statusReady, out)
}

// Fail gives the parent the daemon's one-line error.
func (s *Status) Fail(msg string) error {
	return s.report(statusError+strings.ReplaceAll(msg, "\n", "; "), nil)
}

func (s *Status) report(line string, out *os.File) error {
	if s == nil || s.done {
		return nil
	}
	s.done = true
	if s.handover {
		return s.reportHandover(line)
	}
	if out == nil {
		out = s.null
	}
	// The verdict goes out only after stdout and stderr have left the
	// parent's pipe, and the spare /dev/null is closed, so when the parent
	// returns the daemon holds neither: keep a private copy of the pipe for
	// the one line.
	pipeFd, err := unix.Dup(1)
	if err != nil {
		s.null.Close()
		return fmt.Errorf("status pipe: %w", err)
	}
	pipe := os.NewFile(uintptr(pipeFd), "status-pipe")
	defer pipe.Close()
	err = Redirect(out)
	s.null.Close()
	_, werr := pipe.WriteString(line + "\n")
	return errors.Join(err, werr)
}

// Redirect points stdout and stderr at f, e.g. at the reopened log file.
func Redirect(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup3 onto fd %d: %w", fd, err)
		}
	}
	return nil
}

// reportHandover gives a replacement's verdict on fd 2, then puts the
// stderr it inherited (fd 3) in the pipe's place.
func (s *Status) reportHandover(line string) error {
	s.null.Close()
	_, err := os.Stderr.WriteString(line + "\n")
	if derr := unix.Dup3(3, 2, 0); derr != nil {
		return errors.Join(err, fmt.Errorf("dup3 onto fd 2: %w", derr))
	}
	unix.Close(3)
	return err
}
