package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
)

// profiles writes the pprof files of --profile (CPU, the whole run) and
// --profile-mem (heap, at shutdown). Read them with
//
//	go tool pprof -top /path/to/twistd cpu.pprof
//	go tool pprof -sample_index=alloc_space -top /path/to/twistd mem.pprof
//
// (alloc_space: all the run allocated; inuse_space: what was live at the
// end; -http=:8080 for the web view). Both files are created when the run
// starts, before any privilege drop, so a bad path fails at start-up.
type profiles struct {
	cpu, mem *os.File
	log      *slog.Logger
}

func startProfiles(set *settings, log *slog.Logger) (*profiles, error) {
	p := &profiles{log: log}
	if set.profileMem != "" {
		f, err := os.Create(set.profileMem)
		if err != nil {
			return nil, fmt.Errorf("--profile-mem: %w", err)
		}
		p.mem = f
	}
	if set.profile != "" {
		f, err := os.Create(set.profile)
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			if p.mem != nil {
				p.mem.Close()
			}
			return nil, fmt.Errorf("--profile: %w", err)
		}
		p.cpu = f
		log.Info("writing a CPU profile to " + set.profile)
	}
	return p, nil
}

// stop flushes the CPU profile and writes the heap profile; failures are
// logged, as the run itself is over.
func (p *profiles) stop() {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		p.done("CPU", p.cpu, nil)
	}
	if p.mem != nil {
		runtime.GC() // the heap profile shows the state as of the last GC
		p.done("heap", p.mem, pprof.Lookup("heap").WriteTo(p.mem, 0))
	}
}

func (p *profiles) done(kind string, f *os.File, err error) {
	if err = errors.Join(err, f.Close()); err != nil {
		p.log.Error(fmt.Sprintf("writing the %s profile %s: %v", kind, f.Name(), err))
		return
	}
	p.log.Info(fmt.Sprintf("wrote the %s profile %s", kind, f.Name()))
}
