package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAcquireWritesPidAndLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.pid")
	if st, _, err := Probe(path); err != nil || st != Absent {
		t.Fatalf("Probe before = %v, %v; want absent", st, err)
	}
	p, err := Acquire(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := fmt.Sprintf("%d\n", os.Getpid()); string(b) != want {
		t.Fatalf("pidfile holds %q, want %q", b, want)
	}
	st, pid, err := Probe(path)
	if err != nil || st != Live || pid != os.Getpid() {
		t.Fatalf("Probe = %v %d %v; want live %d", st, pid, err, os.Getpid())
	}
	// flock belongs to the open file description, so a second Acquire in
	// this same process conflicts like another process would.
	_, err = Acquire(path, 0o644)
	var re *RunningError
	if !errors.As(err, &re) || re.Pid != os.Getpid() {
		t.Fatalf("second Acquire: %v; want RunningError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile still there after Release: %v", err)
	}
}

// Content other than a pid is someone else's file: refused, untouched,
// and never quoted back.
func TestAcquireRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.pid")
	const secret = "root:$y$j9T$secret:19000:0:99999:7:::\n"
	os.WriteFile(path, []byte(secret), 0o600)
	_, err := Acquire(path, 0o644)
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "holds something other than a pid") {
		t.Fatalf("Acquire: %v", err)
	}
	if _, _, err := Probe(path); err == nil {
		t.Fatal("Probe accepted a file that is not a pidfile")
	}
	if removed, err := RemoveStale(path); removed || err == nil {
		t.Fatalf("RemoveStale = %v, %v", removed, err)
	}
	if b, _ := os.ReadFile(path); string(b) != secret {
		t.Fatalf("file changed: %q", b)
	}
}

func TestAcquireReplacesStale(t *testing.T) {
	for _, tc := range []struct{ old, want string }{
		{"999999999\n", "stale pid 999999999 (no such process)"},
		{"", ""},
	} {
		path := filepath.Join(t.TempDir(), "t.pid")
		os.WriteFile(path, []byte(tc.old), 0o644)
		if st, _, _ := Probe(path); st != Stale {
			t.Errorf("%q: Probe = %v, want stale", tc.old, st)
		}
		p, err := Acquire(path, 0o644)
		if err != nil {
			t.Fatalf("%q: %v", tc.old, err)
		}
		if p.Previous != tc.want {
			t.Errorf("%q: Previous = %q, want %q", tc.old, p.Previous, tc.want)
		}
		if pid, err := ReadPidfile(path); err != nil || pid != os.Getpid() {
			t.Errorf("%q: ReadPidfile = %d, %v", tc.old, pid, err)
		}
		p.Release()
	}
}

// Many concurrent claimants (each its own open file description, which is
// what separate processes have): exactly one wins each round, and the file
// names the winner.
func TestAcquireConcurrentOneWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.pid")
	for round := range 20 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*Pidfile
		var lost int
		for range 20 {
			wg.Go(func() {
				p, err := Acquire(path, 0o644)
				mu.Lock()
				defer mu.Unlock()
				var re *RunningError
				switch {
				case err == nil:
					won = append(won, p)
				case errors.As(err, &re):
					lost++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || lost != 19 {
			t.Fatalf("round %d: %d winners, %d refused; want 1 and 19", round, len(won), lost)
		}
		if err := won[0].Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReleaseLeavesStaleWhenDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipped as root: root may write any directory")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "t.pid")
	p, err := Acquire(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if err := p.Release(); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("Release = %v; want an error saying the file is left stale", err)
	}
	if st, _, _ := Probe(path); st != Stale {
		t.Fatalf("Probe after failed removal = %v, want stale", st)
	}
}
