package chat

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// TestPythonClient drives the server with a client written in Python from
// the protocol description, to prove the wire format is language-neutral.
func TestPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	_, addr, _ := startServer(t, DefaultConfig())
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/chatclient.py", host, port).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("chatclient.py: %v\n%s", err, out)
	}
}
