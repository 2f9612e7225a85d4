package testutil

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// module marks the frames of this project's code in a goroutine dump.
const module = "github.com/twistd-go/twistd/"

// LeakWait bounds how long RunLeakChecked waits for goroutines to end after
// the tests: a Stop that returned may leave a goroutine its last few
// instructions, never seconds.
const LeakWait = 5 * time.Second

// RunLeakChecked runs the tests of m and then fails the run, naming each
// goroutine and its stack, when a goroutine that runs or was started by
// this module's code is still there LeakWait later ("No goroutine outlives
// Stop"). The testing framework's goroutines and the caller's are not
// counted. Use it as TestMain: os.Exit(testutil.RunLeakChecked(m)).
func RunLeakChecked(m *testing.M) int {
	code := m.Run()
	leaked := WaitGoroutinesEnd(LeakWait)
	if len(leaked) == 0 {
		return code
	}
	reportLeaks(os.Stderr, leaked)
	if code == 0 {
		code = 1
	}
	return code
}

func reportLeaks(w io.Writer, leaked []string) {
	fmt.Fprintf(w, "leak check: %d goroutine(s) of %s still running %v after the tests ended:\n\n", len(leaked), strings.TrimSuffix(module, "/"), LeakWait)
	for _, g := range leaked {
		fmt.Fprintf(w, "%s\n\n", g)
	}
}

// WaitGoroutinesEnd polls until no goroutine of this module's code runs
// other than the caller, or until wait has passed; it returns the stacks
// of those still running then.
func WaitGoroutinesEnd(wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		leaked := moduleGoroutines()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// moduleGoroutines returns the stacks of the goroutines other than the
// caller's that have a frame of this module's code, or were created by it.
func moduleGoroutines() []string {
	var dump []byte
	for n := 1 << 16; ; n *= 2 {
		dump = make([]byte, n)
		if k := runtime.Stack(dump, true); k < n {
			dump = dump[:k]
			break
		}
	}
	// The caller's goroutine comes first in the dump.
	blocks := strings.Split(strings.TrimSpace(string(dump)), "\n\n")
	var ours []string
	for _, g := range blocks[1:] {
		if strings.Contains(g, module) {
			ours = append(ours, g)
		}
	}
	return ours
}
