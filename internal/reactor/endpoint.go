package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Endpoint is a parsed server endpoint string (Twisted's strports):
//
//	10000                          TCP port 10000 on every interface
//	tcp:10000                      the same
//	tcp:port=10000:interface=127.0.0.1
//	tcp:10000:interface=\:\:1      (colons inside a value are escaped with \)
//	unix:/run/app.sock             a Unix stream socket
//	unix:address=/run/app.sock:mode=660
//	systemd:domain=INET:index=0    the first socket passed by systemd
type Endpoint struct {
	Kind      string // "tcp", "unix" or "systemd"
	Port      int    // tcp
	Interface string // tcp; empty means every interface
	Path      string // unix
	Mode      os.FileMode
	Domain    string // systemd: INET, INET6 or UNIX
	Index     int    // systemd
}

// ParseEndpoint parses a server endpoint string.
func ParseEndpoint(s string) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, errors.New("empty endpoint")
	}
	parts := splitEscaped(s)
	if _, err := strconv.Atoi(parts[0]); err == nil && len(parts) == 1 {
		parts = []string{"tcp", parts[0]}
	}
	kind, args := parts[0], parts[1:]
	var pos []string
	kw := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if _, dup := kw[k]; dup {
				return Endpoint{}, fmt.Errorf("endpoint %q: %s given twice", s, k)
			}
			kw[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	ep := Endpoint{Kind: kind}
	var err error
	switch kind {
	case "tcp":
		err = ep.parseTCP(pos, kw)
	case "unix":
		err = ep.parseUnix(pos, kw)
	case "systemd":
		err = ep.parseSystemd(pos, kw)
	default:
		err = fmt.Errorf("unknown endpoint type %q (want tcp, unix or systemd)", kind)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	return ep, nil
}

func (ep *Endpoint) parseTCP(pos []string, kw map[string]string) error {
	port, err := takeOne(pos, kw, "port")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	ep.Port = n
	ep.Interface = kw["interface"]
	delete(kw, "interface")
	return noneLeft(kw)
}

func (ep *Endpoint) parseUnix(pos []string, kw map[string]string) error {
	path, err := takeOne(pos, kw, "address")
	if err != nil {
		return err
	}
	ep.Path = path
	ep.Mode = 0o666
	if m, ok := kw["mode"]; ok {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o777 {
			return fmt.Errorf("mode %q is not an octal permission", m)
		}
		ep.Mode = os.FileMode(n)
		delete(kw, "mode")
	}
	return noneLeft(kw)
}

func (ep *Endpoint) parseSystemd(pos []string, kw map[string]string) error {
	if len(pos) > 0 {
		return fmt.Errorf("unexpected %q", pos[0])
	}
	ep.Domain = kw["domain"]
	switch ep.Domain {
	case "INET", "INET6", "UNIX":
	default:
		return fmt.Errorf("domain must be INET, INET6 or UNIX, not %q", ep.Domain)
	}
	idx, err := strconv.Atoi(kw["index"])
	if err != nil || idx < 0 {
		return fmt.Errorf("index %q is not a number >= 0", kw["index"])
	}
	ep.Index = idx
	delete(kw, "domain")
	delete(kw, "index")
	return noneLeft(kw)
}

// takeOne returns the value given either positionally or as key=value.
func takeOne(pos []string, kw map[string]string, key string) (string, error) {
	v, haveKW := kw[key]
	delete(kw, key)
	switch {
	case len(pos) > 1 || (len(pos) == 1 && haveKW):
		return "", fmt.Errorf("%s given more than once", key)
	case len(pos) == 1:
		v = pos[0]
	case !haveKW:
		return "", fmt.Errorf("missing %s", key)
	}
	if v == "" {
		return "", fmt.Errorf("empty %s", key)
	}
	return v, nil
}

func noneLeft(kw map[string]string) error {
	for k := range kw {
		return fmt.Errorf("unknown parameter %q", k)
	}
	return nil
}

// splitEscaped splits on ':' except where escaped with '\'.
func splitEscaped(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ':':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(parts, cur.String())
}

// String renders the endpoint in canonical form.
func (ep Endpoint) String() string {
	esc := func(v string) string { return strings.ReplaceAll(v, ":", `\:`) }
	switch ep.Kind {
	case "tcp":
		if ep.Interface == "" {
			return fmt.Sprintf("tcp:%d", ep.Port)
		}
		return fmt.Sprintf("tcp:%d:interface=%s", ep.Port, esc(ep.Interface))
	case "unix":
		if ep.Mode != 0 && ep.Mode != 0o666 {
			return fmt.Sprintf("unix:%s:mode=%o", esc(ep.Path), ep.Mode)
		}
		return "unix:" + esc(ep.Path)
	case "systemd":
		return fmt.Sprintf("systemd:domain=%s:index=%d", ep.Domain, ep.Index)
	}
	return ep.Kind
}

// Key identifies what the endpoint binds, so two services on one address
// can be detected before anything is bound.
func (ep Endpoint) Key() string {
	if ep.Kind == "tcp" && (ep.Interface == "" || ep.Interface == "0.0.0.0" || ep.Interface == "::") {
		return fmt.Sprintf("tcp:*:%d", ep.Port)
	}
	return ep.String()
}

// Listen binds the endpoint, or adopts the socket a replacement process
// inherited for it (WithAdopter).
func (ep Endpoint) Listen(ctx context.Context) (net.Listener, error) {
	if ln, ok, err := ep.adopt(ctx); ok {
		return ln, err
	}
	var lc net.ListenConfig
	switch ep.Kind {
	case "tcp":
		inheritKeepAlive(&lc)
		addr := net.JoinHostPort(ep.Interface, strconv.Itoa(ep.Port))
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("cannot listen on %s: %w", addr, bareErr(err))
		}
		return ln, nil
	case "unix":
		return listenUnix(ctx, ep)
	case "systemd":
		return listenSystemd(ep)
	}
	return nil, fmt.Errorf("cannot listen on %s", ep)
}

func listenUnix(ctx context.Context, ep Endpoint) (net.Listener, error) {
	// A socket file left by a dead process blocks bind; remove it only if
	// nobody answers on it.
	if fi, err := os.Lstat(ep.Path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", ep.Path); err == nil {
			c.Close()
			return nil, fmt.Errorf("cannot listen on %s: another process is serving it", ep.Path)
		}
		os.Remove(ep.Path)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", ep.Path)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", ep.Path, bareErr(err))
	}
	if err := os.Chmod(ep.Path, ep.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot set mode of %s: %w", ep.Path, bareErr(err))
	}
	return ln, nil
}

// listenSystemd takes over a socket passed by systemd socket activation
// (sd_listen_fds(3): fds from 3, LISTEN_PID must be ours).
func listenSystemd(ep Endpoint) (net.Listener, error) {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if pid != os.Getpid() || n <= 0 {
		if pid > 0 && pid != os.Getpid() {
			// A daemonized child inherits the variables but not the sockets.
			return nil, fmt.Errorf("%s: the sockets passed by systemd belong to pid %d, not this process (socket activation needs --nodaemon)", ep, pid)
		}
		return nil, fmt.Errorf("%s: no sockets passed by systemd (LISTEN_FDS/LISTEN_PID not set for this process)", ep)
	}
	if ep.Index >= n {
		return nil, fmt.Errorf("%s: systemd passed only %d socket(s)", ep, n)
	}
	fd := 3 + ep.Index
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), fmt.Sprintf("systemd-socket-%d", ep.Index))
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: fd %d is not a listening socket: %w", ep, fd, bareErr(err))
	}
	want := map[string]string{"INET": "tcp", "INET6": "tcp", "UNIX": "unix"}[ep.Domain]
	if ln.Addr().Network() != want {
		ln.Close()
		return nil, fmt.Errorf("%s: fd %d is a %s socket", ep, fd, ln.Addr().Network())
	}
	return ln, nil
}

// bareErr strips net.OpError and os.SyscallError wrappers whose text repeats
// what the caller's message already says ("listen tcp 127.0.0.1:80: bind:").
func bareErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// PortFlag turns a plugin's --port value into an endpoint: a bare port
// number is served on iface, anything else is an endpoint string. Its
// errors name the flag.
func PortFlag(port, iface string) (Endpoint, error) {
	if n, err := strconv.Atoi(port); err == nil {
		if n < 0 || n > 65535 {
			return Endpoint{}, fmt.Errorf("invalid value %q for --port: not a port number", port)
		}
		return Endpoint{Kind: "tcp", Port: n, Interface: iface}, nil
	}
	ep, err := ParseEndpoint(port)
	if err != nil {
		return Endpoint{}, fmt.Errorf("invalid value for --port: %w", err)
	}
	return ep, nil
}
