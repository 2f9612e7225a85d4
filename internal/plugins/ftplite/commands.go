package ftplite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/ftplite/cmdline"
	"github.com/twistd-go/twistd/internal/plugins/ftplite/jail"
)

type command struct {
	fn    func(s *session, arg string)
	login bool // refused with 530 before login
	arg   bool // refused with 501 without an argument
}

// commands is filled in init because HELP lists it.
var commands map[string]command

func init() {
	pub := func(fn func(*session, string)) command { return command{fn: fn} }
	priv := func(fn func(*session, string)) command { return command{fn: fn, login: true} }
	withArg := func(fn func(*session, string)) command { return command{fn: fn, login: true, arg: true} }
	commands = map[string]command{
		"USER": {fn: cmdUser, arg: true}, "PASS": pub(cmdPass), "QUIT": pub(cmdQuit),
		"SYST": pub(cmdSyst), "FEAT": pub(cmdFeat), "OPTS": {fn: cmdOpts, arg: true},
		"NOOP": pub(cmdNoop), "HELP": pub(cmdHelp), "ABOR": pub(cmdAbor),
		"AUTH": {fn: cmdAuth, arg: true}, "PBSZ": {fn: cmdPbsz, arg: true}, "PROT": {fn: cmdProt, arg: true},
		"CCC": pub(cmdCcc),
		"PWD": priv(cmdPwd), "XPWD": priv(cmdPwd), "CWD": priv(cmdCwd), "XCWD": priv(cmdCwd),
		"CDUP": priv(cmdCdup), "XCUP": priv(cmdCdup),
		"TYPE": withArg(cmdType), "MODE": withArg(cmdMode), "STRU": withArg(cmdStru), "ALLO": priv(cmdAllo),
		"REST": withArg(cmdRest), "STAT": priv(cmdStat),
		"SIZE": withArg(cmdSize), "MDTM": withArg(cmdMdtm), "MFMT": withArg(cmdMfmt),
		"DELE": withArg(cmdDele), "MKD": withArg(cmdMkd), "XMKD": withArg(cmdMkd),
		"RMD": withArg(cmdRmd), "XRMD": withArg(cmdRmd),
		"RNFR": withArg(cmdRnfr), "RNTO": withArg(cmdRnto), "SITE": withArg(cmdSite),
		"PASV": priv(cmdPasv), "EPSV": priv(cmdEpsv), "PORT": withArg(cmdPort), "EPRT": withArg(cmdEprt),
		"LIST": priv(cmdList), "NLST": priv(cmdNlst), "MLSD": priv(cmdMlsd), "MLST": priv(cmdMlst),
		"RETR": withArg(cmdRetr), "STOR": withArg(cmdStor), "APPE": withArg(cmdAppe), "STOU": priv(cmdStou),
	}
}

// dispatch runs one command line. Called with mu held.
func (s *session) dispatch(line string) {
	verb, arg, ok := cmdline.Parse(line)
	if !ok {
		s.reply(500, "Syntax error, command unrecognized.")
		return
	}
	c, found := commands[verb]
	switch {
	case !found:
		s.reply(502, "Command not implemented.")
		return
	case c.login && s.user == "":
		s.reply(530, "Please login with USER and PASS.")
		return
	case c.arg && arg == "":
		s.reply(501, "Syntax error in parameters or arguments.")
		return
	}
	if verb != "RNTO" {
		s.renameFrom = ""
	}
	c.fn(s, arg)
}

func (s *session) canWrite() bool { return s.user != "" && !s.anon }

// canUpload also covers anonymous users under --anonymous-write, who may
// create files and directories but not change or remove existing ones.
func (s *session) canUpload() bool { return s.canWrite() || s.anon && s.srv.cfg.AnonWrite }

// resolve maps a client path into the jail, answering 553 for names with
// control characters.
func (s *session) resolve(arg string) (virtual, rel string, ok bool) {
	v, err := jail.Resolve(s.cwd, arg)
	if err != nil {
		s.log.Warn("refused a file name with control characters", "command_arg", arg)
		s.reply(553, "File name not allowed.")
		return "", "", false
	}
	return v, jail.Rel(v), true
}

// resolveEntry is resolve for names that must not be the root itself
// (the target of STOR, APPE or RNTO).
func (s *session) resolveEntry(arg string) (virtual, rel string, ok bool) {
	virtual, rel, ok = s.resolve(arg)
	if ok && virtual == "/" {
		s.reply(553, "Not allowed on the root directory.")
		return "", "", false
	}
	return virtual, rel, ok
}

// fsFail answers a failed file-system call. The text never carries the
// error itself, which may name real paths.
func (s *session) fsFail(op, virtual string, err error) {
	s.log.Debug(op+" failed", "path", virtual, "error", err)
	if code, text := spaceReply(err); code != 0 {
		s.reply(code, text+".")
		return
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.reply(550, "No such file or directory.")
	case errors.Is(err, fs.ErrPermission):
		s.reply(550, "Permission denied.")
	case errors.Is(err, fs.ErrExist):
		s.reply(550, "File exists.")
	default:
		s.reply(550, op+" failed.")
	}
}

// openPlain opens the plain file at rel through the jail for reading
// (RETR, MFMT), answering any failure itself: 550 "Not a plain file." for
// a directory, a pipe or a device. The Stat by name keeps devices and
// pipes from being opened at all, since opening some devices acts on
// them; O_NONBLOCK and O_NOCTTY cover one swapped in after that Stat.
// The descriptor's own Stat is the check that counts.
func (s *session) openPlain(op, virtual, rel string) (*os.File, fs.FileInfo, bool) {
	fi, err := s.srv.root.Stat(rel)
	if err == nil && !fi.Mode().IsRegular() {
		s.reply(550, "Not a plain file.")
		return nil, nil, false
	}
	var f *os.File
	if err == nil {
		f, err = s.srv.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		s.fsFail(op, virtual, err)
		return nil, nil, false
	}
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		s.reply(550, "Not a plain file.")
		return nil, nil, false
	}
	return f, fi, true
}

func cmdUser(s *session, arg string) {
	if s.srv.cfg.TLSRequired && !s.secure {
		s.reply(530, "TLS required: send AUTH TLS first.")
		return
	}
	if wait, first := s.srv.refusing(s.ipKey); wait > 0 {
		if first {
			s.log.Warn("refused USER: too many failed logins from this address (the rest of this lock-out is not logged)", "user", arg)
		}
		s.srv.metrics.login(loginRefused)
		s.quit = true
		s.reply(421, lockText(wait))
		s.t.LoseConnection()
		return
	}
	s.user, s.anon, s.pendingUser = "", false, arg
	s.cwd, s.rest = "/", 0
	s.reply(331, "Please specify the password.")
}

func cmdPass(s *session, arg string) {
	name := s.pendingUser
	if name == "" {
		s.reply(503, "Login with USER first.")
		return
	}
	s.pendingUser = ""
	if s.srv.isAnonymous(name) {
		s.user, s.anon = name, true
		s.log.Info("anonymous login", "user", name)
		s.srv.metrics.login(loginAnonymous)
		s.reply(230, "Login successful.")
		return
	}
	ip := s.ipKey
	s.startJob("login", false, func(ctx context.Context) result {
		endTurn, err := s.srv.waitTurn(ctx, ip)
		if err != nil {
			return result{code: 530, text: "Login incorrect."} // the client is gone
		}
		if wait, first := s.srv.refusing(ip); wait > 0 {
			endTurn()
			if first {
				s.log.Warn("refused PASS: too many failed logins from this address (the rest of this lock-out is not logged)", "user", name)
			}
			s.srv.metrics.login(loginRefused)
			return result{code: 530, text: "Login incorrect.", closeText: lockText(wait)}
		}
		ok, err := s.srv.checkPassword(ctx, name, arg)
		if err != nil {
			endTurn()
			return result{code: 530, text: "Login incorrect."}
		}
		if ok {
			s.srv.loginSucceeded(ip)
			endTurn()
			s.log.Info("login", "user", name)
			s.srv.metrics.login(loginSuccess)
			s.mu.Lock()
			s.user, s.fails = name, 0
			s.mu.Unlock()
			return result{code: 230, text: "Login successful."}
		}
		delay, locked := s.srv.loginFailed(ip)
		endTurn()
		s.mu.Lock()
		s.fails++
		n := s.fails
		s.mu.Unlock()
		s.log.Warn("failed login", "user", name, "peer", ip, "failures", n)
		s.srv.metrics.login(loginFailure)
		r := result{code: 530, text: "Login incorrect."}
		switch {
		case locked:
			r.closeText = lockText(s.srv.lockedFor(ip))
			s.log.Warn("refusing this address: too many failed logins", "peer", ip, "for", s.srv.lockedFor(ip).Round(time.Second).String())
		case n >= s.srv.cfg.MaxLoginFails:
			r.closeText = "Too many failed logins."
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return r
	})
}

func cmdQuit(s *session, _ string) {
	s.quit = true
	s.reply(221, "Goodbye.")
	s.t.LoseConnection()
}

func cmdSyst(s *session, _ string) { s.reply(215, "UNIX Type: L8") }
func cmdNoop(s *session, _ string) { s.reply(200, "NOOP ok.") }
func cmdAllo(s *session, _ string) { s.reply(202, "ALLO command ignored.") }
func cmdAbor(s *session, _ string) { s.reply(225, "No transfer to abort.") }
func cmdCcc(s *session, _ string)  { s.reply(534, "CCC not allowed.") }

func cmdFeat(s *session, _ string) {
	feats := []string{"EPRT", "EPSV", "MDTM", "MFMT", "MLST " + s.factList(), "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"}
	if s.srv.tls != nil {
		feats = append(feats, "AUTH TLS", "PBSZ", "PROT")
	}
	slices.Sort(feats)
	s.replyLines(211, "Features:", feats, "End")
}

func cmdOpts(s *session, arg string) {
	opt, val, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(opt) {
	case "UTF8", "UTF-8":
		if strings.EqualFold(val, "ON") {
			s.reply(200, "Always in UTF8 mode.")
		} else {
			s.reply(504, "Only UTF8 ON is supported.")
		}
	case "MLST":
		s.facts = selectFacts(val)
		s.reply(200, "MLST OPTS "+selectedFacts(s.facts))
	default:
		s.reply(501, "Option not understood.")
	}
}

func cmdHelp(s *session, _ string) {
	verbs := make([]string, 0, len(commands))
	for v := range commands {
		verbs = append(verbs, v)
	}
	slices.Sort(verbs)
	var lines []string
	for i := 0; i < len(verbs); i += 10 {
		lines = append(lines, strings.Join(verbs[i:min(i+10, len(verbs))], " "))
	}
	s.replyLines(214, "The following commands are recognized:", lines, "Help OK.")
}

func cmdPwd(s *session, _ string) { s.reply(257, quote(s.cwd)+" is the current directory.") }

func cmdCwd(s *session, arg string) {
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Stat(rel)
	if err != nil || !fi.IsDir() {
		s.reply(550, "Failed to change directory.")
		return
	}
	s.cwd = v
	s.reply(250, "Directory successfully changed.")
}

func cmdCdup(s *session, _ string) { cmdCwd(s, "..") }

func cmdType(s *session, arg string) {
	switch strings.ToUpper(strings.Join(strings.Fields(arg), " ")) {
	case "A", "A N":
		s.ascii = true
		s.reply(200, "Switching to ASCII mode.")
	case "I", "L 8":
		s.ascii = false
		s.reply(200, "Switching to Binary mode.")
	default:
		s.reply(504, "Unsupported TYPE.")
	}
}

func cmdMode(s *session, arg string) {
	if strings.EqualFold(arg, "S") {
		s.reply(200, "Mode set to S.")
	} else {
		s.reply(504, "Only MODE S is supported.")
	}
}

func cmdStru(s *session, arg string) {
	if strings.EqualFold(arg, "F") {
		s.reply(200, "Structure set to F.")
	} else {
		s.reply(504, "Only STRU F is supported.")
	}
}

func cmdRest(s *session, arg string) {
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		s.reply(501, "REST needs a byte offset.")
		return
	}
	s.rest = n
	s.reply(350, "Restart position accepted ("+arg+").")
}

func cmdSize(s *session, arg string) {
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Stat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		s.log.Debug("SIZE failed", "path", v, "error", err)
		s.reply(550, "Could not get file size.")
		return
	}
	s.reply(213, strconv.FormatInt(fi.Size(), 10))
}

func cmdMdtm(s *session, arg string) {
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Stat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		s.log.Debug("MDTM failed", "path", v, "error", err)
		s.reply(550, "Could not get file modification time.")
		return
	}
	s.reply(213, fi.ModTime().UTC().Format("20060102150405"))
}

// cmdMfmt sets a file's modification time: "MFMT YYYYMMDDHHMMSS[.sss]
// path", in UTC (draft-somers-ftp-mfxx), answered "213 Modify=time; path"
// as FileZilla expects. Changing a file, it is refused where DELE is. The
// file is opened through the jail as RETR opens it and its time set on
// the descriptor, so the file checked is the file changed (see
// setModTime).
func cmdMfmt(s *session, arg string) {
	if s.denyWrite() {
		return
	}
	stamp, name, _ := strings.Cut(arg, " ")
	if name == "" {
		s.reply(501, "Usage: MFMT YYYYMMDDHHMMSS[.sss] path (UTC).")
		return
	}
	t, err := parseTimeVal(stamp)
	if err != nil {
		s.reply(501, "Bad time: "+err.Error()+".")
		return
	}
	v, rel, ok := s.resolve(name)
	if !ok {
		return
	}
	f, _, ok := s.openPlain("MFMT", v, rel)
	if !ok {
		return
	}
	defer f.Close()
	if err := setModTime(s.srv.root, rel, f, t); err != nil {
		s.fsFail("MFMT", v, err)
		return
	}
	s.log.Info("set modification time", "path", v, "time", t.Format(time.RFC3339Nano))
	s.reply(213, "Modify="+stamp+"; "+name)
}

// parseTimeVal parses an RFC 3659 time-val: YYYYMMDDHHMMSS in UTC, years
// 1000 to 9999, then optionally a dot and decimals of a second (kept to
// the nanosecond). A second of 60 is a leap second, which POSIX time
// does not have: it becomes the next minute's first. The error says what
// is wrong, for the 501 reply.
func parseTimeVal(s string) (time.Time, error) {
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(s string) bool {
		return s != "" && strings.Trim(s, "0123456789") == ""
	}
	switch {
	case len(whole) != 14 || !digits(whole):
		return time.Time{}, errors.New("want 14 digits, YYYYMMDDHHMMSS")
	case dot && !digits(frac):
		return time.Time{}, errors.New("want digits after the dot")
	}
	n := func(i, j int) int {
		v, _ := strconv.Atoi(whole[i:j])
		return v
	}
	year, month, day, hour, minute, sec := n(0, 4), n(4, 6), n(6, 8), n(8, 10), n(10, 12), n(12, 14)
	switch {
	case year < 1000:
		return time.Time{}, errors.New("year out of range")
	case month < 1 || month > 12:
		return time.Time{}, errors.New("month out of range")
	case day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day():
		return time.Time{}, errors.New("day out of range")
	case hour > 23:
		return time.Time{}, errors.New("hour out of range")
	case minute > 59:
		return time.Time{}, errors.New("minute out of range")
	case sec > 60:
		return time.Time{}, errors.New("second out of range")
	}
	nsec := 0
	if dot {
		nsec, _ = strconv.Atoi((frac + "00000000")[:9])
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), nil
}

func (s *session) denyWrite() bool {
	if !s.canWrite() {
		s.reply(550, "Permission denied.")
		return true
	}
	return false
}

func cmdDele(s *session, arg string) {
	if s.denyWrite() {
		return
	}
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	if fi, err := s.srv.root.Lstat(rel); err == nil && fi.IsDir() {
		s.reply(550, "Is a directory; use RMD.")
		return
	}
	if err := s.srv.root.Remove(rel); err != nil {
		s.fsFail("Delete", v, err)
		return
	}
	s.log.Info("deleted", "path", v)
	s.reply(250, "Delete operation successful.")
}

func cmdMkd(s *session, arg string) {
	if !s.canUpload() {
		s.reply(550, "Permission denied.")
		return
	}
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	if err := s.srv.root.Mkdir(rel, 0o755); err != nil {
		s.fsFail("Create directory", v, err)
		return
	}
	s.reply(257, quote(v)+" created.")
}

func cmdRmd(s *session, arg string) {
	if s.denyWrite() {
		return
	}
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Lstat(rel)
	if err == nil && !fi.IsDir() {
		s.reply(550, "Not a directory.")
		return
	}
	if err == nil && v == "/" {
		s.reply(550, "Cannot remove the root directory.")
		return
	}
	if err == nil {
		err = s.srv.root.Remove(rel)
	}
	if err != nil {
		s.fsFail("Remove directory", v, err)
		return
	}
	s.reply(250, "Remove directory operation successful.")
}

func cmdRnfr(s *session, arg string) {
	if s.denyWrite() {
		return
	}
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	if _, err := s.srv.root.Lstat(rel); err != nil || v == "/" {
		s.reply(550, "RNFR command failed.")
		return
	}
	s.renameFrom = v
	s.reply(350, "Ready for RNTO.")
}

func cmdRnto(s *session, arg string) {
	from := s.renameFrom
	s.renameFrom = ""
	if from == "" {
		s.reply(503, "RNFR required first.")
		return
	}
	v, rel, ok := s.resolveEntry(arg)
	if !ok {
		return
	}
	if err := s.srv.root.Rename(jail.Rel(from), rel); err != nil {
		s.fsFail("Rename", v, err)
		return
	}
	s.log.Info("renamed", "from", from, "to", v)
	s.reply(250, "Rename successful.")
}

// cmdSite implements SITE CHMOD for accounts. Other SITE commands (lftp's
// SITE UTIME) get 504, which clients treat as optional.
func cmdSite(s *session, arg string) {
	sub, rest, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(sub) {
	case "HELP":
		s.reply(214, "SITE CHMOD <octal mode> <path>")
	case "CHMOD":
		if s.denyWrite() {
			return
		}
		modeText, name, _ := strings.Cut(rest, " ")
		mode, err := strconv.ParseUint(modeText, 8, 32)
		if err != nil || mode > 0o777 || name == "" {
			s.reply(501, "Usage: SITE CHMOD <octal mode> <path>")
			return
		}
		v, rel, ok := s.resolve(name)
		if !ok {
			return
		}
		if err := s.srv.root.Chmod(rel, os.FileMode(mode)); err != nil {
			s.fsFail("SITE CHMOD", v, err)
			return
		}
		s.reply(200, "SITE CHMOD command ok.")
	default:
		s.reply(504, "SITE command not implemented.")
	}
}

func cmdStat(s *session, arg string) {
	if arg == "" {
		who := s.user
		if s.anon {
			who = "anonymous (" + s.user + ")"
		}
		mode := "BINARY"
		if s.ascii {
			mode = "ASCII"
		}
		lines := []string{
			"Connected to " + s.ipKey,
			"Logged in as " + who,
			"TYPE: " + mode,
			"No data connection",
		}
		if s.secure {
			lines = append(lines, "Control connection is encrypted")
		}
		s.replyLines(211, "FTP server status:", lines, "End of status")
		return
	}
	v, rel, ok := s.resolve(stripListOptions(arg))
	if !ok {
		return
	}
	var b strings.Builder
	if err := s.listTo(&b, listLong, v, rel, "", statLimit); err != nil {
		s.fsFail("STAT", v, err)
		return
	}
	s.write("213-Status of " + oneLine(v) + ":\r\n" + b.String() + "213 End of status.\r\n")
}

// statLimit bounds a STAT listing, which is sent on the control connection.
const statLimit = 1000

// stripListOptions drops leading "-la"-style options from a LIST or NLST
// argument (wget sends "LIST -a"); recursion is never done.
func stripListOptions(arg string) string {
	for strings.HasPrefix(arg, "-") {
		opt, rest, _ := strings.Cut(arg, " ")
		if strings.Trim(opt[1:], "abcdfhilnqrstuACFGLRSTU1") != "" {
			break
		}
		arg = strings.TrimLeft(rest, " ")
	}
	return arg
}

func cmdList(s *session, arg string) { s.startList(listLong, stripListOptions(arg)) }
func cmdNlst(s *session, arg string) { s.startList(listNames, stripListOptions(arg)) }
func cmdMlsd(s *session, arg string) { s.startList(listFacts, arg) }

func cmdMlst(s *session, arg string) {
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Stat(rel)
	if err != nil {
		s.fsFail("MLST", v, err)
		return
	}
	facts := string(s.appendFacts(nil, fi, v == "/"))
	s.replyLines(250, "Listing "+v, []string{facts + " " + v}, "End")
}
