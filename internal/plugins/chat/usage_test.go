package chat

import (
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--heartbeat-timeout", "0s"}, "invalid value 0s for --heartbeat-timeout: must be positive"},
		{[]string{"--heartbeat-timeout", "soon"}, "--heartbeat-timeout"},
		{[]string{"--max-frame", "11"}, "invalid value 11 for --max-frame"},
		{[]string{"--send-queue", "1000"}, "invalid value 1000 for --send-queue"},
		{[]string{"--frame-timeout", "0s"}, "invalid value 0s for --frame-timeout: must be positive"},
		{[]string{"--max-errors", "-1"}, "invalid value -1 for --max-errors: must be 0 or more"},
		{[]string{"--port", "tcp:99999"}, "invalid value for --port"},
	} {
		code, stdout, stderr := testutil.Run(t, "", 10*time.Second, append([]string{"-n", "chat"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "goroutine") || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestHelpDocumentsReplies(t *testing.T) {
	code, stdout, _ := testutil.Run(t, "", 10*time.Second, "chat", "--help")
	for _, want := range []string{"199 error", "409", "410", "429", "--heartbeat-timeout duration", "--send-queue", "--frame-timeout duration", "--max-errors int", "--users string"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("chat --help (exit %d) lacks %q", code, want)
		}
	}
}
