package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/twistd-go/twistd/internal/safefile"
)

// Info is what a running daemon records beside its pidfile (PIDFILE.info,
// JSON) for `twistd status` and `stop`: the pidfile itself stays "PID\n"
// for every other tool.
type Info struct {
	Pid     int       `json:"pid"`
	Runs    string    `json:"runs"` // "plugin fastpoetry", "application poetry (/srv/two-poems.toml)"
	Started time.Time `json:"started"`
	Version string    `json:"version"`
	// Reloaded is when this process took over from the one it replaced.
	Reloaded time.Time `json:"reloaded,omitzero"`
	// Reloading is set while a replacement is starting; LastReload says
	// how the latest attempt ended, for `twistd reload` to report.
	Reloading  bool          `json:"reloading,omitempty"`
	LastReload *ReloadResult `json:"last_reload,omitempty"`
}

// ReloadResult is the outcome of one reload attempt as the replaced
// process saw it.
type ReloadResult struct {
	Asked time.Time `json:"asked"`           // when the request arrived
	Pid   int       `json:"pid,omitempty"`   // the replacement, when it is ready
	Error string    `json:"error,omitempty"` // its one-line error otherwise
	Code  int       `json:"code,omitempty"`  // and its exit code (2: bad file or flag)
}

const infoSuffix = ".info"

// maxInfo bounds what ReadInfo reads: the file is small and may be anyone's.
const maxInfo = 4096

// Record writes info beside the pidfile; Release removes it. An existing
// file there that is not a record of ours is left alone (the error says
// so, and the daemon runs without one).
func (p *Pidfile) Record(info Info) error {
	if p.info != nil { // handed over with the pidfile
		return p.UpdateRecord(info)
	}
	name := p.name + infoSuffix
	f, err := p.dir.Open(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("daemon record %w", err)
	}
	if _, err := decodeInfo(f); err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return fmt.Errorf("daemon record %s holds something else; leaving it alone", filepath.Join(p.dir.Path(), name))
	}
	p.info = f
	if err := p.UpdateRecord(info); err != nil {
		p.info = nil
		f.Close()
		return fmt.Errorf("daemon record %s: %w", filepath.Join(p.dir.Path(), name), bare(err))
	}
	return nil
}

// UpdateRecord rewrites the record beside the pidfile in place.
func (p *Pidfile) UpdateRecord(info Info) error {
	if p == nil || p.info == nil {
		return errors.New("no daemon record")
	}
	b, _ := json.Marshal(info)
	if err := p.info.Truncate(0); err != nil {
		return err
	}
	_, err := p.info.WriteAt(append(b, '\n'), 0)
	return err
}

// chownRecord gives the record to uid/gid with the pidfile.
func (p *Pidfile) chownRecord(uid, gid int) error {
	if p.info == nil {
		return nil
	}
	return p.info.Chown(uid, gid)
}

func (p *Pidfile) removeRecord() {
	if p.info == nil {
		return
	}
	p.dir.Remove(p.name+infoSuffix, p.info)
	p.info.Close()
	p.info = nil
}

func decodeInfo(f *os.File) (Info, error) {
	var info Info
	b, err := io.ReadAll(io.LimitReader(f, maxInfo+1))
	if err != nil {
		return info, err
	}
	if len(b) == 0 {
		return info, io.EOF
	}
	if len(b) > maxInfo {
		return info, errors.New("too long")
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Pid <= 0 {
		return info, errors.New("not a daemon record")
	}
	return info, nil
}

// ReadInfo returns the record of the daemon with the pidfile at path, if
// it names pid.
func ReadInfo(path string, pid int) (Info, bool) {
	f, d, err := safefile.OpenFile(path+infoSuffix, os.O_RDONLY, 0)
	if err != nil {
		return Info{}, false
	}
	defer d.Close()
	defer f.Close()
	info, err := decodeInfo(f)
	return info, err == nil && info.Pid == pid
}
