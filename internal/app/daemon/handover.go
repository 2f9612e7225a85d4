package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	godaemon "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"

	"github.com/twistd-go/twistd/internal/safefile"
)

// A reload (binary upgrade) starts a replacement process and hands it
// what a start would otherwise take: the locked pidfile (flock(2) belongs
// to the open file description, so the lock passes with the descriptor
// and no other start can slip in between) and every listening socket. The
// replacement reports on a status pipe, as a daemon child does; only when
// it is ready does this process stop accepting.
//
// Descriptors are passed with syscall.ForkExec from their raw numbers:
// os.File.Fd() would put the shared socket into blocking mode under the
// listeners this process goes on serving with if the replacement fails.
//
// Layout in the replacement: 0 /dev/null, 1 our stdout, 2 the status pipe
// (so a usage error it prints reaches us as its one line), 3 our stderr,
// then the pidfile, its record and the sockets, named in handoverEnv.

const handoverEnv = "TWISTD_HANDOVER"

// Socket is a listening socket to hand over, under its endpoint's key.
type Socket struct {
	Key string `json:"key"`
	FD  int    `json:"fd"`
}

type handoverSpec struct {
	From    int      `json:"from"` // the pid handing over
	Pidfile int      `json:"pidfile,omitempty"`
	Record  int      `json:"record,omitempty"`
	Path    string   `json:"path,omitempty"` // the pidfile's path
	Sockets []Socket `json:"sockets"`
}

// ReplaceError is a replacement that failed; Code is its exit status when
// it exited (2: it refused its arguments or application file).
type ReplaceError struct {
	Msg  string
	Code int
}

func (e *ReplaceError) Error() string { return e.Msg }

// Replace starts exe with args in dir as this process's replacement,
// handing it pid (nil for none) and socks, and waits up to timeout for its
// verdict. It returns the new pid once the replacement reports ready.
func Replace(exe string, args []string, dir string, pid *Pidfile, socks []Socket, timeout time.Duration) (int, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	files := []uintptr{rawFd(null), 1, rawFd(w), 2}
	spec := handoverSpec{From: os.Getpid()}
	add := func(fd int) int {
		files = append(files, uintptr(fd))
		return len(files) - 1
	}
	if pid != nil {
		spec.Pidfile = add(int(rawFd(pid.f)))
		spec.Path = pid.path
		if pid.info != nil {
			spec.Record = add(int(rawFd(pid.info)))
		}
	}
	for _, s := range socks {
		spec.Sockets = append(spec.Sockets, Socket{Key: s.Key, FD: add(s.FD)})
	}
	b, _ := json.Marshal(spec)
	env := []string{handoverEnv + "=" + string(b)}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		// systemd's sockets travel as ours; a daemon child's mark would
		// send the replacement down go-daemon's path.
		case handoverEnv, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", godaemon.MARK_NAME:
			continue
		}
		env = append(env, kv)
	}
	child, err := syscall.ForkExec(exe, args, &syscall.ProcAttr{Dir: dir, Env: env, Files: files})
	w.Close()
	if err != nil {
		return 0, &ReplaceError{Msg: fmt.Sprintf("cannot start %s: %v", exe, err), Code: 1}
	}
	proc, _ := os.FindProcess(child)
	return child, replaceVerdict(proc, r, timeout)
}

// rawFd is f's descriptor without os.File.Fd's switch to blocking mode.
func rawFd(f *os.File) uintptr {
	var fd uintptr
	if sc, err := f.SyscallConn(); err == nil {
		sc.Control(func(d uintptr) { fd = d })
	}
	return fd
}

func replaceVerdict(child *os.Process, r *os.File, timeout time.Duration) error {
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var said []string
	for {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				st, _ := child.Wait()
				code := 1
				if st != nil && st.Exited() {
					code = st.ExitCode()
				}
				msg := strings.Join(said, "; ")
				if msg == "" {
					how := "exited"
					if st != nil {
						how = "exited (" + st.String() + ")"
					}
					msg = fmt.Sprintf("replacement (pid %d) %s before it was ready", child.Pid, how)
				}
				return &ReplaceError{Msg: msg, Code: max(code, 1)}
			case l == statusReady:
				// Reaped by whoever inherits it once we exit.
				child.Release()
				return nil
			case strings.HasPrefix(l, statusError):
				child.Wait()
				return &ReplaceError{Msg: strings.TrimPrefix(l, statusError), Code: 1}
			case strings.TrimSpace(l) != "" && len(said) < 20:
				said = append(said, strings.TrimPrefix(strings.TrimSpace(l), "twistd: "))
			}
		case <-deadline.C:
			child.Kill()
			child.Wait()
			return &ReplaceError{Msg: fmt.Sprintf("replacement (pid %d) not ready after %v; killed it", child.Pid, timeout), Code: 1}
		}
	}
}

// Inherited is what a replacement received from the process it replaces.
type Inherited struct {
	From    int
	sockets map[string][]*os.File // by key; two "port 0" endpoints share one
	spec    handoverSpec
}

// Inheritance returns what this process inherited as a replacement, or
// nil when it was started as usual. It takes the variable out of the
// environment so nothing started later sees it.
func Inheritance() *Inherited {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(handoverEnv)
	var spec handoverSpec
	if json.Unmarshal([]byte(v), &spec) != nil || spec.From <= 0 {
		return nil
	}
	in := &Inherited{From: spec.From, spec: spec, sockets: map[string][]*os.File{}}
	for _, s := range spec.Sockets {
		unix.CloseOnExec(s.FD)
		in.sockets[s.Key] = append(in.sockets[s.Key], os.NewFile(uintptr(s.FD), s.Key))
	}
	return in
}

// Socket takes the inherited socket for an endpoint key; the caller owns
// the file.
func (in *Inherited) Socket(key string) (*os.File, bool) {
	if in == nil {
		return nil, false
	}
	fs := in.sockets[key]
	if len(fs) == 0 {
		return nil, false
	}
	in.sockets[key] = fs[1:]
	return fs[0], true
}

// CloseUnused closes the inherited sockets no service adopted, and says
// which (their keys).
func (in *Inherited) CloseUnused() []string {
	if in == nil {
		return nil
	}
	var keys []string
	for k, fs := range in.sockets {
		for _, f := range fs {
			keys = append(keys, k)
			f.Close()
		}
	}
	clear(in.sockets)
	return keys
}

// Status is the replacement's end of its status pipe (fd 2 until ready).
func (in *Inherited) Status() (*Status, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(3)
	return &Status{null: null, handover: true}, nil
}

// Pidfile adopts the locked pidfile handed over and its record; it names
// the replaced process until this one calls Rewrite once it is ready. The directory is
// reached again by the rules of package safefile, for the removal at exit.
func (in *Inherited) Pidfile() (*Pidfile, error) {
	if in == nil || in.spec.Pidfile == 0 {
		return nil, nil
	}
	f := os.NewFile(uintptr(in.spec.Pidfile), in.spec.Path)
	unix.CloseOnExec(in.spec.Pidfile)
	d, err := safefile.OpenDir(filepath.Dir(in.spec.Path))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pidfile %w", err)
	}
	p := &Pidfile{path: in.spec.Path, name: filepath.Base(in.spec.Path), dir: d, f: f}
	if in.spec.Record != 0 {
		unix.CloseOnExec(in.spec.Record)
		p.info = os.NewFile(uintptr(in.spec.Record), in.spec.Path+infoSuffix)
	}
	return p, nil
}

// Abandon lets go of a pidfile handed to a replacement: the lock and the
// file are the replacement's now, so nothing is unlocked or removed.
func (p *Pidfile) Abandon() {
	if p == nil || p.f == nil {
		return
	}
	p.f.Close()
	if p.info != nil {
		p.info.Close()
		p.info = nil
	}
	p.dir.Close()
	p.f = nil
}

// Rewrite writes this process's pid into the pidfile in place: a
// replacement once it is ready, the replaced process after a replacement
// that failed.
func (p *Pidfile) Rewrite() error {
	if p == nil || p.f == nil {
		return nil
	}
	return p.write()
}
