package ftplite

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/twistd-go/twistd/internal/plugins/ftplite/jail"
)

// chunk is how much a transfer moves between two deadline extensions; the
// data timeout therefore measures a stall, not the length of a transfer.
const chunk = 16 << 20

// dataSpec is how the next transfer gets its data connection.
type dataSpec struct {
	pasv     *net.TCPListener
	pasvEnds time.Time // when pasv stops waiting for its connection
	active   *net.TCPAddr
	tls      bool
}

func (d dataSpec) close() {
	if d.pasv != nil {
		d.pasv.Close()
	}
}

func (s *session) closePassive() {
	if s.pasv != nil {
		s.pasv.Close()
		s.pasv = nil
		s.pasvTimer.Stop()
	}
}

// expirePassive closes ln, the listener PASV or EPSV opened, if it is
// still waiting for a transfer command when --pasv-timeout is over: a
// client that never connects must not hold a port for the whole session.
// It runs on the timer's goroutine.
func (s *session) expirePassive(ln *net.TCPListener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pasv == ln {
		s.closePassive()
		s.log.Info("closed a passive listener: no data connection", "port", ln.Addr().(*net.TCPAddr).Port, "timeout", s.srv.cfg.PasvTimeout.String())
	}
}

func (s *session) refuseAfterEPSVAll() bool {
	if s.epsvAll {
		s.reply(503, "EPSV ALL in effect: only EPSV is allowed.")
	}
	return s.epsvAll
}

func cmdPasv(s *session, _ string) {
	if s.refuseAfterEPSVAll() {
		return
	}
	ip := s.srv.cfg.PublicAddr
	if ip == nil && s.localIP != nil {
		ip = s.localIP.To4()
	}
	if ip == nil {
		s.reply(425, "PASV works over IPv4 only; use EPSV.")
		return
	}
	port, ok := s.listenPassive()
	if !ok {
		return
	}
	s.reply(227, fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d).", ip[0], ip[1], ip[2], ip[3], port>>8, port&0xff))
}

func cmdEpsv(s *session, arg string) {
	v4 := s.localIP.To4() != nil
	switch strings.ToUpper(arg) {
	case "":
	case "ALL":
		s.epsvAll = true
		s.reply(200, "EPSV ALL ok.")
		return
	case "1", "2":
		if (arg == "1") != v4 {
			if v4 {
				s.reply(522, "Network protocol not supported, use (1)")
			} else {
				s.reply(522, "Network protocol not supported, use (2)")
			}
			return
		}
	default:
		s.reply(501, "EPSV takes 1, 2 or ALL.")
		return
	}
	if port, ok := s.listenPassive(); ok {
		s.reply(229, fmt.Sprintf("Entering Extended Passive Mode (|||%d|).", port))
	}
}

// listenPassive opens the session's one passive listener on the control
// connection's local address, replacing any earlier one. With a port range
// it starts at a random port, so the ports in use tell an observer nothing.
func (s *session) listenPassive() (int, bool) {
	s.closePassive()
	s.active = nil
	if s.localIP == nil {
		s.reply(425, "Passive mode needs a TCP control connection.")
		return 0, false
	}
	lo, hi := s.srv.cfg.PassiveMin, s.srv.cfg.PassiveMax
	tries := []int{0}
	if lo > 0 {
		n := hi - lo + 1
		start := rand.IntN(n)
		tries = tries[:0]
		for i := range min(n, 200) {
			tries = append(tries, lo+(start+i)%n)
		}
	}
	var err error
	for _, p := range tries {
		var ln *net.TCPListener
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{IP: s.localIP, Port: p})
		if err == nil {
			s.pasv = ln
			s.pasvEnds = time.Now().Add(s.srv.cfg.PasvTimeout)
			s.pasvTimer = time.AfterFunc(s.srv.cfg.PasvTimeout, func() { s.expirePassive(ln) })
			return ln.Addr().(*net.TCPAddr).Port, true
		}
	}
	s.log.Warn("cannot open a passive port", "error", err)
	s.reply(425, "Cannot open passive connection.")
	return 0, false
}

func cmdPort(s *session, arg string) {
	if s.refuseAfterEPSVAll() {
		return
	}
	ip, port, err := parsePort(arg)
	if err != nil {
		s.reply(501, "Illegal PORT command.")
		return
	}
	s.setActive("PORT", ip, port)
}

func cmdEprt(s *session, arg string) {
	if s.refuseAfterEPSVAll() {
		return
	}
	ip, port, err := parseEprt(arg)
	if errors.Is(err, errFamily) {
		s.reply(522, "Network protocol not supported, use (1,2)")
		return
	}
	if err != nil {
		s.reply(501, "Illegal EPRT command.")
		return
	}
	s.setActive("EPRT", ip, port)
}

// setActive accepts an active-mode address only if it is the control
// peer's and not a privileged port: anything else is the FTP bounce
// attack (RFC 2577), so no connection is ever attempted.
func (s *session) setActive(cmd string, ip net.IP, port int) {
	if s.peerIP == nil || !ip.Equal(s.peerIP) || port < 1024 {
		s.log.Warn("refused "+cmd+": data connections go only to the client's own address, port 1024 or above",
			"target", net.JoinHostPort(ip.String(), strconv.Itoa(port)), "peer", s.ipKey)
		s.reply(504, "Command not implemented for that parameter: only your own address, port 1024 or above.")
		return
	}
	s.closePassive()
	s.active = &net.TCPAddr{IP: ip, Port: port}
	s.reply(200, cmd+" command successful.")
}

var errFamily = errors.New("unsupported address family")

// parsePort parses "h1,h2,h3,h4,p1,p2".
func parsePort(arg string) (net.IP, int, error) {
	parts := strings.Split(arg, ",")
	if len(parts) != 6 {
		return nil, 0, errors.New("want six numbers")
	}
	var n [6]byte
	for i, p := range parts {
		v, err := strconv.ParseUint(strings.TrimSpace(p), 10, 8)
		if err != nil {
			return nil, 0, err
		}
		n[i] = byte(v)
	}
	return net.IPv4(n[0], n[1], n[2], n[3]), int(n[4])<<8 | int(n[5]), nil
}

// parseEprt parses "|1|132.235.1.2|6275|" (RFC 2428; any delimiter).
func parseEprt(arg string) (net.IP, int, error) {
	if len(arg) < 2 || arg[0] < 33 || arg[0] > 126 {
		return nil, 0, errors.New("bad delimiter")
	}
	parts := strings.Split(arg[1:], arg[:1])
	if len(parts) != 4 || parts[3] != "" {
		return nil, 0, errors.New("want |family|address|port|")
	}
	ip := net.ParseIP(parts[1])
	switch {
	case parts[0] != "1" && parts[0] != "2":
		return nil, 0, errFamily
	case ip == nil || (parts[0] == "1") != (ip.To4() != nil && !strings.Contains(parts[1], ":")):
		return nil, 0, errors.New("bad address")
	}
	port, err := strconv.Atoi(parts[2])
	if err != nil || port < 1 || port > 65535 {
		return nil, 0, errors.New("bad port")
	}
	return ip, port, nil
}

// takeData hands the prepared data connection to a transfer. Called with
// mu held; it answers the error itself.
func (s *session) takeData() (dataSpec, bool) {
	if s.pasv == nil && s.active == nil {
		s.reply(425, "Use PORT, EPRT, PASV or EPSV first.")
		return dataSpec{}, false
	}
	if s.srv.cfg.TLSRequired && !s.protP {
		s.reply(521, "Data connections must be protected: send PBSZ 0 and PROT P.")
		return dataSpec{}, false
	}
	d := dataSpec{pasv: s.pasv, pasvEnds: s.pasvEnds, active: s.active, tls: s.protP}
	if s.pasv != nil {
		// The transfer owns the listener now, and its deadline.
		s.pasvTimer.Stop()
	}
	s.pasv, s.active = nil, nil
	return d, true
}

// openData accepts or dials the data connection. A passive connection
// from any address but the control peer's is closed and the listener
// keeps waiting for the right one (no port theft) until --pasv-timeout
// after the PASV or EPSV; a dial gets --data-timeout.
func (s *session) openData(ctx context.Context, d dataSpec) (net.Conn, error) {
	deadline := time.Now().Add(s.srv.cfg.DataTimeout)
	var c net.Conn
	if d.pasv != nil {
		defer d.pasv.Close()
		stop := context.AfterFunc(ctx, func() { d.pasv.Close() })
		defer stop()
		d.pasv.SetDeadline(d.pasvEnds)
		for c == nil {
			tc, err := d.pasv.AcceptTCP()
			if err != nil {
				return nil, err
			}
			if from := tc.RemoteAddr().(*net.TCPAddr); !from.IP.Equal(s.peerIP) {
				s.log.Warn("refused a passive data connection from another address", "from", from.String(), "peer", s.ipKey)
				tc.Close()
				continue
			}
			c = tc
		}
	} else {
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.localIP}, Deadline: deadline}
		var err error
		if c, err = dialer.DialContext(ctx, "tcp", d.active.String()); err != nil {
			return nil, err
		}
	}
	return c, nil
}

var noDataConn = result{code: 425, text: "Cannot open data connection."}

// openTransfer opens the data connection, sends the 150 reply and, under
// PROT P, runs the TLS handshake. Failures are logged; the caller answers
// noDataConn.
func (s *session) openTransfer(ctx context.Context, d dataSpec, v, opening string) (net.Conn, bool) {
	c, err := s.openData(ctx, d)
	if err == nil {
		s.reply(150, opening)
		c, err = s.secureData(ctx, d, c)
	}
	if err != nil {
		s.log.Info("no data connection", "path", v, "error", err)
		return nil, false
	}
	return c, true
}

// secureData runs the TLS handshake on a data connection under PROT P.
// Clients start it after the 150 reply (as vsftpd expects), so it comes
// after that reply here too.
func (s *session) secureData(ctx context.Context, d dataSpec, c net.Conn) (net.Conn, error) {
	if !d.tls {
		return c, nil
	}
	tc := tls.Server(c, s.srv.tls)
	hctx, cancel := context.WithTimeout(ctx, s.srv.cfg.DataTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS on the data connection: %w", err)
	}
	return tc, nil
}

func cmdRetr(s *session, arg string) {
	off := s.rest
	s.rest = 0
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	f, fi, ok := s.openPlain("Open", v, rel)
	if !ok {
		return
	}
	if off > fi.Size() {
		f.Close()
		s.reply(554, "Restart offset beyond the end of the file.")
		return
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		s.fsFail("Seek", v, err)
		return
	}
	d, ok := s.takeData()
	if !ok {
		f.Close()
		return
	}
	ascii := s.ascii
	s.startJob("download", true, func(ctx context.Context) result {
		defer f.Close()
		return s.srv.metrics.transfer(ctx, dirDownload, s.download(ctx, d, f, v, fi.Size()-off, ascii))
	})
}

func (s *session) download(ctx context.Context, d dataSpec, f *os.File, v string, size int64, ascii bool) result {
	mode := "BINARY"
	if ascii {
		mode = "ASCII"
	}
	c, ok := s.openTransfer(ctx, d, v, fmt.Sprintf("Opening %s mode data connection for %s (%d bytes).", mode, path.Base(v), size))
	if !ok {
		return noDataConn
	}
	var src io.Reader = f
	if ascii {
		src = &asciiReader{r: bufio.NewReaderSize(f, 64<<10), out: true}
	}
	start := time.Now()
	n, err := s.copyOut(ctx, c, src)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil || ctx.Err() != nil {
		s.log.Info("download interrupted", "path", v, "bytes", n, "error", err)
		return result{code: 426, text: "Failure writing network stream."}
	}
	s.log.Info("download", "path", v, "bytes", n, "seconds", time.Since(start).Seconds())
	return result{code: 226, text: "Transfer complete."}
}

// copyOut sends src over c. From a plain file to a TCP connection,
// io.CopyN reaches (*net.TCPConn).ReadFrom with the *os.File inside an
// io.LimitedReader, which the kernel serves with sendfile(2): c must stay
// the bare *net.TCPConn for that, so nothing wraps it here.
func (s *session) copyOut(ctx context.Context, c net.Conn, src io.Reader) (int64, error) {
	return s.pump(ctx, c, c, src, c.SetWriteDeadline, dirDownload)
}

// copyIn receives from c into f; from a TCP connection into a file the
// kernel splices.
func (s *session) copyIn(ctx context.Context, f *os.File, c net.Conn, src io.Reader) (int64, error) {
	return s.pump(ctx, c, f, src, c.SetReadDeadline, dirUpload)
}

// pump copies in chunks, pushing the data connection's deadline before
// each; ending ctx (ABOR, lost session) closes c to interrupt it.
// Each chunk is counted as it goes, so a long transfer shows in the
// metrics while it runs.
func (s *session) pump(ctx context.Context, c net.Conn, dst io.Writer, src io.Reader, extend func(time.Time) error, direction string) (int64, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var total int64
	for {
		extend(time.Now().Add(s.srv.cfg.DataTimeout))
		n, err := io.CopyN(dst, src, chunk)
		total += n
		s.srv.metrics.moved(direction, n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func cmdStor(s *session, arg string) { s.startUpload(arg, false) }
func cmdAppe(s *session, arg string) { s.startUpload(arg, true) }

// upload is one STOR, APPE or STOU on its way in.
type upload struct {
	f *os.File
	v string // the target
	// dir is the target's directory, opened once through the jail when a
	// temporary file is written: the file is created, renamed and removed
	// relative to that descriptor (openat, renameat, unlinkat), so a
	// directory on the way swapped for a link meanwhile cannot make the
	// rename or the clean-up miss it. nil when writing in place.
	dir       *os.Root
	name      string // the target's name in dir
	tmp       string // the temporary file's name in dir
	noReplace bool   // the rename must fail rather than replace a file
	opening   string // the text of the 150 reply
	ascii     bool
}

// openDir opens the directory holding rel through the jail and returns
// it with rel's last component.
func (s *session) openDir(rel string) (*os.Root, string, error) {
	dir, err := s.srv.root.OpenRoot(path.Dir(rel))
	return dir, path.Base(rel), err
}

// createTemp creates u's hidden temporary file in u.dir.
func (u *upload) createTemp() error {
	u.tmp = tempName(u.name)
	var err error
	u.f, err = u.dir.OpenFile(u.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	return err
}

// discard removes the temporary file, if any, and closes the directory.
func (u upload) discard() {
	if u.dir != nil {
		u.dir.Remove(u.tmp)
		u.dir.Close()
	}
}

// startUpload begins STOR or APPE. A plain STOR writes a hidden temporary
// file beside the target and renames it over the target once the whole
// upload arrived; APPE and REST+STOR are resumes and write in place.
func (s *session) startUpload(arg string, appe bool) {
	off := s.rest
	s.rest = 0
	if !s.canUpload() {
		s.reply(550, "Permission denied.")
		return
	}
	v, rel, ok := s.resolveEntry(arg)
	if !ok {
		return
	}
	root := s.srv.root
	fi, err := root.Stat(rel)
	exists := err == nil
	switch {
	case exists && !fi.Mode().IsRegular():
		s.reply(550, "Not a plain file.")
		return
	case s.anon && (exists || appe || off > 0):
		s.reply(550, "Permission denied: anonymous uploads may not change existing files.")
		return
	case off > 0 && (!exists || off > fi.Size()):
		s.reply(554, "Restart offset beyond the end of the file.")
		return
	}
	d, ok := s.takeData()
	if !ok {
		return
	}
	// Anonymous uploads never replace a file, even one created by a
	// concurrent upload.
	u := upload{v: v, noReplace: s.anon, opening: "Ok to send data.", ascii: s.ascii}
	if appe || off > 0 {
		// No O_APPEND: the kernel cannot splice into an O_APPEND file.
		u.f, err = root.OpenFile(rel, os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			if appe {
				_, err = u.f.Seek(0, io.SeekEnd)
			} else {
				_, err = u.f.Seek(off, io.SeekStart)
			}
		}
	} else if u.dir, u.name, err = s.openDir(rel); err == nil {
		err = u.createTemp()
	}
	if err != nil {
		if u.f != nil {
			u.f.Close()
		}
		u.discard()
		d.close()
		s.fsFail("Create file", v, err)
		return
	}
	s.startJob("upload", true, func(ctx context.Context) result { return s.srv.metrics.transfer(ctx, dirUpload, s.upload(ctx, d, u)) })
}

// stouTries bounds the names STOU tries before giving up.
const stouTries = 20

// cmdStou stores a file under a name the server makes up, unique in the
// current directory (RFC 959), and names it in the 150 reply as
// "150 FILE: name" (RFC 1123 4.1.2.9), a name relative to the current
// directory. An argument is only a hint: its last component, if usable,
// starts the name ("STOU report.txt" stores report.txt.1a2b3c4d); without
// one the name is upload.1a2b3c4d. The data goes to a hidden temporary
// file, as for STOR, and only a complete upload gets the name, through a
// rename that fails rather than replace a file that took the name
// meanwhile. So STOU never overwrites anything, which is why anonymous
// users under --anonymous-write may use it.
func cmdStou(s *session, arg string) {
	off := s.rest
	s.rest = 0
	if !s.canUpload() {
		s.reply(550, "Permission denied.")
		return
	}
	if off > 0 {
		s.reply(503, "REST does not apply to STOU.")
		return
	}
	hint, ok := stouHint(arg)
	if !ok {
		s.log.Warn("refused a file name with control characters", "command_arg", arg)
		s.reply(553, "File name not allowed.")
		return
	}
	d, ok := s.takeData()
	if !ok {
		return
	}
	dir, err := s.srv.root.OpenRoot(jail.Rel(s.cwd))
	if err != nil {
		d.close()
		s.fsFail("Create file", s.cwd, err)
		return
	}
	for range stouTries {
		name := fmt.Sprintf("%s.%08x", hint, s.srv.cfg.uniqueSuffix())
		v := path.Join(s.cwd, name)
		if _, err := dir.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			if err == nil {
				continue // taken: another name
			}
			dir.Close()
			d.close()
			s.fsFail("Create file", v, err)
			return
		}
		u := upload{v: v, dir: dir, name: name, noReplace: true, opening: "FILE: " + name, ascii: s.ascii}
		err := u.createTemp()
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			dir.Close()
			d.close()
			s.fsFail("Create file", v, err)
			return
		}
		s.startJob("upload", true, func(ctx context.Context) result { return s.srv.metrics.transfer(ctx, dirUpload, s.upload(ctx, d, u)) })
		return
	}
	dir.Close()
	d.close()
	s.log.Warn("STOU found no free name", "dir", s.cwd, "tries", stouTries)
	s.reply(450, "Could not find a unique file name; try again.")
}

// stouHint is the start of a STOU file name made from the command's
// argument: its last component, cut to 100 bytes; "upload" when there is
// none. ok is false for a name holding control characters.
func stouHint(arg string) (hint string, ok bool) {
	if jail.HasControl(arg) {
		return "", false
	}
	hint = path.Base(strings.TrimRight(arg, "/"))
	if hint == "." || hint == ".." || hint == "/" {
		return "upload", true
	}
	for len(hint) > 100 {
		_, n := utf8.DecodeLastRuneInString(hint)
		hint = hint[:len(hint)-n]
	}
	return hint, true
}

func (s *session) upload(ctx context.Context, d dataSpec, u upload) result {
	c, ok := s.openTransfer(ctx, d, u.v, u.opening)
	if !ok {
		u.f.Close()
		u.discard()
		return noDataConn
	}
	var src io.Reader = c
	if u.ascii {
		src = &asciiReader{r: bufio.NewReaderSize(c, 64<<10)}
	}
	start := time.Now()
	n, err := s.copyIn(ctx, u.f, c, src)
	c.Close()
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	// ctx ends on ABOR or when the control connection is gone; either way
	// the client did not see the upload through.
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil && u.dir != nil {
		if err = u.commit(); errors.Is(err, fs.ErrExist) {
			u.discard()
			s.log.Warn("upload discarded: the name was taken meanwhile", "path", u.v, "bytes", n)
			return result{code: 550, text: "File exists; upload discarded."}
		}
	}
	if err != nil {
		u.discard()
		kept := "upload discarded"
		if u.dir == nil {
			kept = "partial data kept for resume"
		}
		s.log.Warn("upload failed; "+kept, "path", u.v, "bytes", n, "error", err)
		if code, text := spaceReply(err); code != 0 {
			return result{code: code, text: text + "; " + kept + "."}
		}
		return result{code: 426, text: "Upload failed; " + kept + "."}
	}
	s.log.Info("upload", "path", u.v, "bytes", n, "seconds", time.Since(start).Seconds())
	return result{code: 226, text: "Transfer complete."}
}

// spaceReply is the reply for an error saying storage ran out (RFC 959):
// 452 when the file system is full, 552 when a quota or the file-size
// limit is reached; code 0 for any other error.
func spaceReply(err error) (code int, text string) {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return 452, "Insufficient storage space"
	case errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return 552, "Exceeded storage allocation"
	}
	return 0, ""
}

// commit puts a finished upload in place: a rename over the target, or
// one that fails if the name exists when u.noReplace. It closes u.dir
// when the rename worked.
func (u upload) commit() error {
	var err error
	if u.noReplace {
		err = renameNoReplace(u.dir, u.tmp, u.name)
	} else {
		err = u.dir.Rename(u.tmp, u.name)
	}
	if err == nil {
		u.dir.Close()
	}
	return err
}

// linkNoReplace is renameNoReplace the portable way: a hard link fails if
// the name exists, where a rename would replace it; then the old name goes.
func linkNoReplace(dir *os.Root, oldname, newname string) error {
	if err := dir.Link(oldname, newname); err != nil {
		return err
	}
	return dir.Remove(oldname)
}

// tempName is a hidden name to write an upload for name to.
func tempName(name string) string {
	if len(name) > 100 {
		name = name[:100]
	}
	return fmt.Sprintf(".%s.ftp-upload-%08x", name, rand.Uint32())
}

// asciiReader converts line ends for TYPE A: LF to CRLF on the way out
// (downloads), CRLF to LF on the way in (uploads).
type asciiReader struct {
	r      *bufio.Reader
	out    bool // add CRs (download) rather than drop them (upload)
	lf     bool // an LF is owed after the CR just given
	prevCR bool
}

func (a *asciiReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if a.lf {
			p[n] = '\n'
			n++
			a.lf = false
			continue
		}
		if n > 0 && a.r.Buffered() == 0 {
			break
		}
		b, err := a.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if a.out {
			if b == '\n' && !a.prevCR {
				b, a.lf = '\r', true
			}
			a.prevCR = b == '\r' && !a.lf
		} else if b == '\r' {
			if next, err := a.r.Peek(1); err == nil && next[0] == '\n' {
				continue
			}
		}
		p[n] = b
		n++
	}
	return n, nil
}
