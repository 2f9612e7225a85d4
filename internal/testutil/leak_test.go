package testutil

import (
	"strings"
	"testing"
	"time"
)

// A goroutine this module started is reported, with its stack, until it
// ends; the caller's own goroutine never is.
func TestWaitGoroutinesEnd(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		<-release
	}()
	leaked := WaitGoroutinesEnd(50 * time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "testutil.TestWaitGoroutinesEnd") {
		t.Errorf("a blocked goroutine of this test: reported %d stacks: %q", len(leaked), leaked)
	}
	close(release)
	<-ended
	if leaked := WaitGoroutinesEnd(5 * time.Second); len(leaked) != 0 {
		t.Errorf("after it ended: reported %q", leaked)
	}
}
