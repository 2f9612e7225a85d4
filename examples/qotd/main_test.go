package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles this module's twistd into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qotd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago, below the
// ephemeral range so outgoing connections do not take it meanwhile.
func freePort(t *testing.T) int {
	t.Helper()
	for p := 20000 + os.Getpid()%5000; p < 32000; p += 7 {
		tl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		tl.Close()
		if err != nil {
			continue
		}
		ul.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

// The plugin of this module serves beside the stock ones, driven by nc:
// a quote per TCP connection, and one per UDP datagram with --udp.
func TestQuoteOverTCPAndUDP(t *testing.T) {
	nc, err := exec.LookPath("nc.openbsd")
	if err != nil {
		if nc, err = exec.LookPath("nc"); err != nil {
			t.Skip("skipped: needs nc (Debian package netcat-openbsd)")
		}
	}
	bin := build(t)
	help, _ := exec.Command(bin, "--help").Output()
	for _, p := range []string{"qotd", "fastpoetry", "echo", "chat", "ftp-lite"} {
		if !bytes.Contains(help, []byte("\n  "+p+" ")) {
			t.Errorf("--help does not list %s:\n%s", p, help)
		}
	}
	dir := t.TempDir()
	quote := "Simplicity is prerequisite for reliability. (Dijkstra)\r\n"
	os.WriteFile(filepath.Join(dir, "quote.txt"), []byte(quote), 0o644)
	port := freePort(t)
	srv := exec.Command(bin, "-n", "qotd", "--port", fmt.Sprint(port), "--iface", "127.0.0.1", "--udp", "--quote", "quote.txt")
	srv.Dir = dir
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "] started\n") {
		if time.Now().After(deadline) {
			t.Fatalf("not started after 10s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, nc, args...)
		cmd.Stdin = strings.NewReader("\n")
		b, err := cmd.Output()
		if err != nil && len(b) == 0 {
			t.Fatalf("nc %v: %v", args, err)
		}
		return string(b)
	}
	for i := range 3 {
		if got := run("-N", "127.0.0.1", fmt.Sprint(port)); got != quote {
			t.Fatalf("TCP %d: %q, want %q", i, got, quote)
		}
	}
	if got := run("-u", "-w1", "127.0.0.1", fmt.Sprint(port)); got != quote {
		t.Fatalf("UDP: %q, want %q", got, quote)
	}
	srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
	}
}
