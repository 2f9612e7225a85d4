package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
//	tcp:10000:interface=\:\:1      (colons inside a value are escaped with \;
//	tcp:10000:interface=::1         an IPv6 interface may also go unescaped)
//	unix:/run/app.sock             a Unix stream socket
//	unix:address=/run/app.sock:mode=660
//	systemd:domain=INET:index=0    the first socket passed by systemd
//	systemd:name=poetry            the socket systemd passed under that name
//	                               (FileDescriptorName=, LISTEN_FDNAMES)
type Endpoint struct {
	Kind      string // "tcp", "unix" or "systemd"
	Port      int    // tcp
	Interface string // tcp; empty means every interface
	Path      string // unix
	Mode      os.FileMode
	Domain    string // systemd: INET, INET6 or UNIX; "" with Name: any
	Index     int    // systemd, when Name is ""
	Name      string // systemd: the socket's FileDescriptorName=
}

// ParseEndpoint parses a server endpoint string.
func ParseEndpoint(s string) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, errors.New("empty endpoint")
	}
	parts := joinAddress(splitEscaped(s))
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
	name, named := kw["name"]
	_, indexed := kw["index"]
	ep.Domain = kw["domain"]
	switch {
	case named && indexed:
		return errors.New("give index or name, not both")
	case named && name == "":
		return errors.New("empty name")
	case named && strings.ContainsAny(name, ": \t\n"):
		// LISTEN_FDNAMES is colon-separated, so no name has a colon.
		return fmt.Errorf("name %q has a colon or a space, which systemd does not allow", name)
	}
	switch ep.Domain {
	case "INET", "INET6", "UNIX":
	case "":
		if named {
			break
		}
		fallthrough
	default:
		return fmt.Errorf("domain must be INET, INET6 or UNIX, not %q", ep.Domain)
	}
	if named {
		ep.Name = name
	} else {
		idx, err := strconv.Atoi(kw["index"])
		if err != nil || idx < 0 {
			return fmt.Errorf("index %q is not a number >= 0 (or give name=)", kw["index"])
		}
		ep.Index = idx
	}
	delete(kw, "domain")
	delete(kw, "index")
	delete(kw, "name")
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

// joinAddress puts back together an IPv6 interface written without
// escapes (tcp:80:interface=::1, as String shows it), which splitting on
// colons tore apart: the longest run of following parts without "=" that
// makes the value an IP address. A value that already is one (escaped:
// interface=\:\:1) is left alone.
func joinAddress(parts []string) []string {
	for i, p := range parts {
		v, ok := strings.CutPrefix(p, "interface=")
		if !ok || isAddr(v) {
			continue
		}
		end := i
		for j := i + 1; j < len(parts) && !strings.Contains(parts[j], "="); j++ {
			if v += ":" + parts[j]; isAddr(v) {
				end = j
			}
		}
		if end > i {
			joined := strings.Join(parts[i:end+1], ":")
			return append(append(parts[:i:i], joined), parts[end+1:]...)
		}
	}
	return parts
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// String renders the endpoint for people: as it would be written, but
// with no escapes ("tcp:0:interface=::1"), so a log line shows the address
// the user gave (a TCP one parses back; Spec always does).
func (ep Endpoint) String() string { return ep.render(func(v string) string { return v }) }

// Spec renders the endpoint as an endpoint string that ParseEndpoint reads
// back to the same endpoint: colons in values are escaped.
func (ep Endpoint) Spec() string {
	return ep.render(func(v string) string { return strings.ReplaceAll(v, ":", `\:`) })
}

func (ep Endpoint) render(esc func(string) string) string {
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
		switch {
		case ep.Name == "":
			return fmt.Sprintf("systemd:domain=%s:index=%d", ep.Domain, ep.Index)
		case ep.Domain == "":
			return "systemd:name=" + ep.Name
		}
		return fmt.Sprintf("systemd:domain=%s:name=%s", ep.Domain, ep.Name)
	}
	return ep.Kind
}

// Key identifies what the endpoint binds, so two services on one address
// can be detected before anything is bound.
func (ep Endpoint) Key() string {
	if ep.Kind == "tcp" && (ep.Interface == "" || ep.Interface == "0.0.0.0" || ep.Interface == "::") {
		return fmt.Sprintf("tcp:*:%d", ep.Port)
	}
	return ep.Spec()
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
// (sd_listen_fds(3): fds from 3, LISTEN_PID must be ours), by index or by
// the name LISTEN_FDNAMES gives it.
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
	idx := ep.Index
	if ep.Name != "" {
		var err error
		if idx, err = systemdIndex(ep.Name, os.Getenv("LISTEN_FDNAMES"), n); err != nil {
			return nil, fmt.Errorf("%s: %w", ep, err)
		}
	}
	if idx >= n {
		return nil, fmt.Errorf("%s: systemd passed only %d socket(s)", ep, n)
	}
	fd := 3 + idx
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), fmt.Sprintf("systemd-socket-%d", idx))
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: fd %d is not a listening socket: %w", ep, fd, bareErr(err))
	}
	want := map[string]string{"INET": "tcp", "INET6": "tcp", "UNIX": "unix"}[ep.Domain]
	if want != "" && ln.Addr().Network() != want {
		ln.Close()
		return nil, fmt.Errorf("%s: fd %d is a %s socket", ep, fd, ln.Addr().Network())
	}
	return ln, nil
}

// systemdIndex finds the socket called name among the n that systemd
// passed, named by fdnames (LISTEN_FDNAMES: colon-separated, in fd order;
// systemd calls an unnamed socket "unknown", and so do we when the
// variable is missing).
func systemdIndex(name, fdnames string, n int) (int, error) {
	names := make([]string, n)
	copy(names, strings.Split(fdnames, ":")) // names past the n fds name nothing

	var found []int
	for i := range names {
		if names[i] == "" {
			names[i] = "unknown"
		}
		if names[i] == name {
			found = append(found, i)
		}
	}
	switch {
	case len(found) == 0 && fdnames == "":
		return 0, fmt.Errorf("systemd passed no socket named %q: the %d passed have no names (LISTEN_FDNAMES not set; FileDescriptorName= in the .socket unit names them)", name, n)
	case len(found) == 0:
		return 0, fmt.Errorf("systemd passed no socket named %q (passed: %s)", name, strings.Join(names, ", "))
	case len(found) == 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("systemd passed %d sockets named %q (one unit with several Listen lines); choose one with index=N", len(found), name)
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
