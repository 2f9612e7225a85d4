package app

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPacerNext(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name  string
		start int
		live  uint64
		share float64
		want  int
	}{
		{"idle large heap drops to the floor", 100, 100 * mib, 0, 10},
		{"idle large heap stops at the floor", 10, 100 * mib, 0, 10},
		{"headroom stays at least 2 MiB", 40, 8 * mib, 0, 25},
		{"a heap under 2 MiB keeps Go's pace", 40, 3 * mib / 2, 0, 100},
		{"busy collector gets Go's default back", 10, 100 * mib, 0.2, 100},
		{"busy collector stays at Go's default", 100, 100 * mib, 0.2, 100},
		{"between the marks nothing changes", 40, 100 * mib, 0.015, 40},
	}
	for _, c := range cases {
		p := pacer{percent: c.start}
		if got := p.next(c.live, c.share); got != c.want {
			t.Errorf("%s: next(%d MiB, %.2f) from %d = %d, want %d", c.name, c.live/mib, c.share, c.start, got, c.want)
		}
	}
}

// With a large live heap and nothing to collect, the running pacer lowers
// the runtime's GC percentage; stopping it restores 100.
func TestPacerLowersIdleHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	stop := paceHeap(slog.New(slog.NewTextHandler(io.Discard, nil)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		if p <= 50 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("GC percent still %d after 20 s with a 64 MiB idle heap", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("after stop the GC percent is %d, want 100", p)
	}
	runtime.KeepAlive(live)
}

func TestPacerOffWhenGOGCSet(t *testing.T) {
	t.Setenv("GOGC", "100")
	stop := paceHeap(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	live := make([]byte, 64<<20)
	runtime.GC()
	time.Sleep(3 * paceEvery)
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GC percent %d with GOGC set; the pacer must stay off", p)
	}
	runtime.KeepAlive(live)
}
