package ftplite

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/ftplite/jail"
)

type listKind int

const (
	listLong  listKind = iota // LIST: ls -l lines
	listNames                 // NLST: names
	listFacts                 // MLSD: RFC 3659 facts
)

// listBatch is how many directory entries are read, formatted and sent
// at a time: listings stream, however big the directory.
const listBatch = 256

func (s *session) startList(kind listKind, arg string) {
	s.rest = 0
	v, rel, ok := s.resolve(arg)
	if !ok {
		return
	}
	fi, err := s.srv.root.Stat(rel)
	if err != nil {
		s.fsFail("List", v, err)
		return
	}
	if kind == listFacts && !fi.IsDir() {
		s.reply(501, "MLSD needs a directory; use MLST for a file.")
		return
	}
	d, ok := s.takeData()
	if !ok {
		return
	}
	prefix := ""
	if kind == listNames && arg != "" {
		prefix = strings.TrimSuffix(arg, "/") + "/"
	}
	s.startJob("listing", true, func(ctx context.Context) result {
		c, ok := s.openTransfer(ctx, d, v, "Here comes the directory listing.")
		if !ok {
			return noDataConn
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		w := &deadlineWriter{c: c, timeout: s.srv.cfg.DataTimeout}
		err := s.listTo(w, kind, v, rel, prefix, -1)
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		if err != nil || ctx.Err() != nil {
			s.log.Info("listing interrupted", "path", v, "error", err)
			return result{code: 426, text: "Failure writing network stream."}
		}
		return result{code: 226, text: "Directory send OK."}
	})
}

// deadlineWriter extends the write deadline before each write; the
// listing above it is buffered, so that is once per 64 KiB.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.c.Write(p)
}

// listTo writes the listing of virtual path v (a directory's entries, or
// the one entry of a file) to out, at most limit entries (-1: all).
// Entries whose names hold control characters are skipped: they could
// forge listing lines. Symbolic links are shown as what they point to
// inside the root; links that lead outside it or nowhere are hidden.
func (s *session) listTo(out io.Writer, kind listKind, v, rel, prefix string, limit int) error {
	root := s.srv.root
	w := bufio.NewWriterSize(out, 64<<10)
	now := time.Now()
	var line []byte
	emit := func(fi fs.FileInfo, name string) error {
		switch kind {
		case listNames:
			line = append(append(append(line[:0], prefix...), name...), '\r', '\n')
		case listFacts:
			line = append(append(append(s.appendFacts(line[:0], fi, false), ' '), name...), '\r', '\n')
		default:
			line = append(appendLong(line[:0], fi, now), name...)
			line = append(line, '\r', '\n')
		}
		_, err := w.Write(line)
		return err
	}
	fi, err := root.Stat(rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		name := path.Base(v)
		if kind == listNames && prefix != "" {
			name, prefix = strings.TrimSuffix(prefix, "/"), ""
		}
		if err := emit(fi, name); err != nil {
			return err
		}
		return w.Flush()
	}
	dir, err := root.Open(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	for n := 0; limit < 0 || n < limit; {
		ents, rerr := dir.ReadDir(listBatch)
		for _, e := range ents {
			name := e.Name()
			if jail.HasControl(name) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			if info.Mode()&fs.ModeSymlink != 0 {
				if info, err = root.Stat(path.Join(rel, name)); err != nil {
					continue
				}
			}
			if err := emit(info, name); err != nil {
				return err
			}
			if n++; n == limit {
				break
			}
		}
		if errors.Is(rerr, io.EOF) || len(ents) == 0 {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return w.Flush()
}

// appendLong formats the start of an `ls -l` line, up to the name. Owner
// and group are always "ftp": ids on the server are nobody's business.
// Times are UTC, which lftp assumes; files older than six months show the
// year instead of the time, as ls does.
func appendLong(b []byte, fi fs.FileInfo, now time.Time) []byte {
	m := fi.Mode()
	switch {
	case m.IsDir():
		b = append(b, 'd')
	case m&fs.ModeSymlink != 0:
		b = append(b, 'l')
	case m&fs.ModeNamedPipe != 0:
		b = append(b, 'p')
	case m&fs.ModeSocket != 0:
		b = append(b, 's')
	case m&fs.ModeCharDevice != 0:
		b = append(b, 'c')
	case m&fs.ModeDevice != 0:
		b = append(b, 'b')
	default:
		b = append(b, '-')
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<uint(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	links := uint64(1)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		links = uint64(st.Nlink)
	}
	b = append(b, ' ')
	b = appendPadded(b, strconv.FormatUint(links, 10), 4)
	b = append(b, " ftp      ftp      "...)
	b = appendPadded(b, strconv.FormatInt(fi.Size(), 10), 12)
	b = append(b, ' ')
	t := fi.ModTime().UTC()
	if age := now.Sub(t); age < 182*24*time.Hour && age > -time.Hour {
		b = t.AppendFormat(b, "Jan _2 15:04")
	} else {
		b = t.AppendFormat(b, "Jan _2  2006")
	}
	return append(b, ' ')
}

func appendPadded(b []byte, s string, width int) []byte {
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// mlstFacts are the facts MLSD and MLST can give, in order.
var mlstFacts = []string{"type", "size", "modify", "perm", "UNIX.mode"}

func defaultFacts() map[string]bool {
	m := map[string]bool{}
	for _, f := range mlstFacts {
		m[strings.ToLower(f)] = true
	}
	return m
}

// selectFacts parses the argument of OPTS MLST ("type;size;").
func selectFacts(arg string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(arg, ";") {
		f = strings.ToLower(strings.TrimSpace(f))
		for _, known := range mlstFacts {
			if f == strings.ToLower(known) {
				m[f] = true
			}
		}
	}
	return m
}

// selectedFacts renders the selection for the OPTS MLST reply.
func selectedFacts(m map[string]bool) string {
	var b strings.Builder
	for _, f := range mlstFacts {
		if m[strings.ToLower(f)] {
			b.WriteString(f + ";")
		}
	}
	return b.String()
}

// factList renders the facts for FEAT, selected ones marked with '*'.
func (s *session) factList() string {
	var b strings.Builder
	for _, f := range mlstFacts {
		b.WriteString(f)
		if s.facts[strings.ToLower(f)] {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// appendFacts formats the selected facts of fi, each ending in ';'. The
// perm fact says what this session may do, not what the mode bits say.
func (s *session) appendFacts(b []byte, fi fs.FileInfo, cdir bool) []byte {
	dir := fi.IsDir()
	if s.facts["type"] {
		switch {
		case cdir:
			b = append(b, "type=cdir;"...)
		case dir:
			b = append(b, "type=dir;"...)
		case fi.Mode().IsRegular():
			b = append(b, "type=file;"...)
		default:
			b = append(b, "type=OS.unix=special;"...)
		}
	}
	if s.facts["size"] && !dir {
		b = append(b, "size="...)
		b = strconv.AppendInt(b, fi.Size(), 10)
		b = append(b, ';')
	}
	if s.facts["modify"] {
		b = append(b, "modify="...)
		b = fi.ModTime().UTC().AppendFormat(b, "20060102150405")
		b = append(b, ';')
	}
	if s.facts["perm"] {
		b = append(b, "perm="...)
		switch {
		case s.canWrite() && dir:
			b = append(b, "cdeflmp"...)
		case s.canWrite():
			b = append(b, "adfrw"...)
		case s.canUpload() && dir:
			b = append(b, "celm"...)
		case dir:
			b = append(b, "el"...)
		default:
			b = append(b, 'r')
		}
		b = append(b, ';')
	}
	if s.facts["unix.mode"] {
		b = append(b, "UNIX.mode=0"...)
		b = strconv.AppendUint(b, uint64(fi.Mode().Perm()), 8)
		b = append(b, ';')
	}
	return b
}
