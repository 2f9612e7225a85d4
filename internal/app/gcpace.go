package app

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Heap pacing. Go's collector lets the heap grow by GOGC percent (100) of
// what survived the last collection before it collects again. A daemon
// whose heap is mostly long-lived connection state (a chat server holding
// tens of thousands of idle sessions) then keeps as much memory again for
// garbage that hardly comes: twice the state in RSS. The pacer lowers the
// percentage while the collector has little to do, and gives it back as
// soon as collection costs CPU, so memory is saved only where it is free.
// An operator who sets GOGC or GOMEMLIMIT has chosen: the pacer stays off.
const (
	paceEvery       = 500 * time.Millisecond
	paceMinPercent  = 10      // never below this share of the live heap
	paceMinHeadroom = 2 << 20 // nor below this much headroom: a small heap keeps Go's pace
	// The collector's share of the CPU time available (GOMAXPROCS × wall
	// time) over a pacing interval: above paceBusy Go's default comes back
	// at once (a burst of traffic is short, and one spent collecting at a
	// tenth of the headroom costs it several per cent), below paceIdle the
	// percentage drops to its floor at once (a burst of logins leaves a
	// heap that would otherwise take seconds to come down).
	paceBusy = 0.02
	paceIdle = 0.01
)

// pacer holds the percentage it set last.
type pacer struct{ percent int }

// next returns the GC percentage for a live heap of live bytes, given the
// collector's share of the CPU since the last call.
func (p *pacer) next(live uint64, gcShare float64) int {
	want := p.percent
	switch {
	case gcShare > paceBusy:
		want = 100
	case gcShare < paceIdle:
		want = paceMinPercent // the floor below decides
	}
	floor := 100
	if live > 0 {
		floor = int(min(100, 100*paceMinHeadroom/live))
	}
	p.percent = min(100, max(want, floor, paceMinPercent))
	return p.percent
}

// paceHeap starts the pacer unless the environment tunes the collector;
// the returned func stops it and restores Go's default.
func paceHeap(log *slog.Logger) (stop func()) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		if os.Getenv(v) != "" {
			log.Info(v + " is set: heap pacing off")
			return func() {}
		}
	}
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
	}
	read := func() (live uint64, gc, total float64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Float64(), samples[2].Value.Float64()
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(paceEvery)
		defer t.Stop()
		p := pacer{percent: 100}
		_, gc0, total0 := read()
		for {
			select {
			case <-t.C:
			case <-done:
				return
			}
			live, gc, total := read()
			share := 0.0
			if total > total0 {
				share = (gc - gc0) / (total - total0)
			}
			gc0, total0 = gc, total
			if before := p.percent; p.next(live, share) != before {
				debug.SetGCPercent(p.percent)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		debug.SetGCPercent(100)
	}
}
