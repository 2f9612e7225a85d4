package reactor

import (
	"os"
	"testing"

	"github.com/twistd-go/twistd/internal/testutil"
)

// Every goroutine the reactor package or its tests start is gone once the
// tests are over: "No goroutine outlives Stop" (DESIGN.md), checked once
// for the whole run.
func TestMain(m *testing.M) {
	os.Exit(testutil.RunLeakChecked(m))
}
