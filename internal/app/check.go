package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/twistd-go/twistd/internal/app/appfile"
	"github.com/twistd-go/twistd/internal/app/daemon"
	"github.com/twistd-go/twistd/internal/plugins"
)

// pathCheck is one file or directory a service will open.
type pathCheck struct {
	file string // the application file that named it, or ""
	line int
	what string // `service "frost": poem`, `fastpoetry: --poem`
	path string // as the service opens it
	use  plugins.PathUse
}

// checkResources is the part of check that looks at the disk, as nginx -t
// does: every path a service will open is opened, by the user who will
// open it, and the directories the runner writes its pidfile, log and
// profiles into must be writable. It returns every problem.
func checkResources(proc *settings, flags *pflag.FlagSet, paths []pathCheck) (appfile.Errors, error) {
	var out appfile.Errors
	report := func(p pathCheck, err error, as string) {
		out = append(out, &appfile.Error{File: p.file, Line: p.line, Msg: fmt.Sprintf("%s %s: %v%s", p.what, p.path, err, as)})
	}
	var late []pathCheck // opened by the --uid user
	// Without root the ids can only be our own (creds.Possible).
	switching := proc.creds.Requested() && os.Geteuid() == 0
	for _, p := range paths {
		p.path = hostPath(proc, p)
		if p.use.Privileged || !switching {
			if err := openable(p.path, p.use); err != nil {
				report(p, err, "")
			}
			continue
		}
		late = append(late, p)
	}
	if len(late) > 0 {
		errs, err := openableAs(proc.creds, late)
		if err != nil {
			return nil, failure(fmt.Errorf("check: cannot open files as %s: %w", proc.creds, err))
		}
		for i, err := range errs {
			if err != nil {
				report(late[i], err, " (as "+proc.creds.String()+")")
			}
		}
	}
	for _, w := range []struct{ flag, path string }{
		{"pidfile", proc.pidfile}, {"logfile", proc.logfile},
		{"profile", flags.Lookup("profile").Value.String()}, {"profile-mem", flags.Lookup("profile-mem").Value.String()},
	} {
		if w.path == "" {
			continue
		}
		if !filepath.IsAbs(w.path) {
			w.path = filepath.Join(proc.rundir, w.path)
		}
		dir := filepath.Dir(w.path)
		if err := syscall.Access(dir, unix.W_OK|unix.X_OK); err != nil {
			p := runnerSource(flags, w.flag)
			p.path = w.path
			report(p, fmt.Errorf("directory %s: %w", dir, err), "")
		}
	}
	return out.Sorted(), nil
}

// runnerSource says where a runner flag was set: a line of an application
// file, or the command line.
func runnerSource(flags *pflag.FlagSet, name string) pathCheck {
	if at := flags.Lookup(name).Annotations[fromFileKey]; len(at) > 0 {
		i := strings.LastIndexByte(at[0], ':')
		line, _ := strconv.Atoi(at[0][i+1:])
		return pathCheck{file: at[0][:i], line: line, what: name}
	}
	return pathCheck{what: "--" + name}
}

// hostPath is where the service's path is now, before the chroot: a path
// opened after --chroot is inside the jail (whose "/" is the working
// directory then), any other relative path is in the run directory.
func hostPath(proc *settings, p pathCheck) string {
	switch {
	case proc.chroot != "" && !p.use.Early:
		return filepath.Join(proc.chroot, p.path)
	case filepath.IsAbs(p.path):
		return p.path
	}
	return filepath.Join(proc.rundir, p.path)
}

// openable opens path as the service will and closes it again. A
// directory must also be listable and searchable.
func openable(path string, use plugins.PathUse) error {
	f, err := plugins.Open(path, use)
	if err != nil {
		return err
	}
	defer f.Close()
	if !use.Dir {
		return nil
	}
	if _, err := f.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return bareErr(err)
	}
	// Opening "dir/." walks through dir, so it needs search permission.
	g, err := plugins.Open(path+"/.", use)
	if err != nil {
		return err
	}
	return g.Close()
}

// openableAs runs openable for each path with the file-system ids of c:
// on a thread of its own whose fsuid, fsgid and supplementary groups are
// c's. Linux keeps these per thread, so the rest of the process keeps its
// ids; a fsuid other than 0 also drops the capabilities that let root read
// anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the kernel decides
// as it will for the daemon after the drop, ACLs and all. The thread is
// never handed back to the scheduler: it ends with its goroutine.
//
// This beats re-executing ourselves under the target ids (the binary
// must then be executable by that user, from where it lies) and access(2)
// (it checks the real ids, which we cannot change for one thread).
func openableAs(c *daemon.Credentials, paths []pathCheck) ([]error, error) {
	type result struct {
		errs []error
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		var r result
		if r.err = becomeFS(c); r.err == nil {
			for _, p := range paths {
				r.errs = append(r.errs, openable(p.path, p.use))
			}
		}
		done <- r
	}()
	r := <-done
	return r.errs, r.err
}

// becomeFS gives the calling thread c's file-system ids. The raw system
// calls act on this thread only, unlike syscall.Setgroups and friends,
// which Go applies to every thread.
func becomeFS(c *daemon.Credentials) error {
	gids := make([]uint32, len(c.Groups)) // gid_t
	for i, g := range c.Groups {
		gids[i] = uint32(g)
	}
	var groups unsafe.Pointer
	if len(gids) > 0 {
		groups = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(groups), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if c.GID >= 0 {
		unix.RawSyscall(unix.SYS_SETFSGID, uintptr(c.GID), 0, 0)
		if now, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); int(now) != c.GID {
			return errors.New("setfsgid refused")
		}
	}
	if c.UID >= 0 {
		unix.RawSyscall(unix.SYS_SETFSUID, uintptr(c.UID), 0, 0)
		if now, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); int(now) != c.UID {
			return errors.New("setfsuid refused")
		}
	}
	return nil
}
