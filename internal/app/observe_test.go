package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// get fetches url and returns the status code and body (0 when the
// request failed).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startObserved runs `twistd -n --metrics ... PLUGIN --port P --iface
// 127.0.0.1 [plugin args]` on free loopback ports in dir and returns the
// process, the plugin's address and the metrics URL.
func startObserved(t *testing.T, dir string, env, runner []string, plugin ...string) (*testutil.Proc, string, string) {
	t.Helper()
	mport, eport := testutil.FreePort(t), testutil.FreePort(t)
	args := append([]string{"-n", "--metrics", fmt.Sprintf("tcp:%d:interface=127.0.0.1", mport)}, runner...)
	args = append(append(args, plugin[0], "--port", fmt.Sprint(eport), "--iface", "127.0.0.1"), plugin[1:]...)
	cmd := exec.Command(testutil.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := testutil.StartCmd(t, cmd, dir)
	p.WaitFor(t, "] started\n", 10*time.Second)
	return p, fmt.Sprintf("127.0.0.1:%d", eport), fmt.Sprintf("http://127.0.0.1:%d", mport)
}

// /readyz is 200 while serving and 503 from the moment a shutdown begins,
// while the drain still serves a client (a slow reader of a 16 MiB poem);
// /healthz is 200 throughout.
func TestReadyzDuringDrain(t *testing.T) {
	dir := t.TempDir()
	poem := bytes.Repeat([]byte("Whose woods these are I think I know.\n"), 16<<20/38)
	os.WriteFile(filepath.Join(dir, "big.txt"), poem, 0o644)
	p, addr, url := startObserved(t, dir, nil, []string{"--grace", "20s"}, "fastpoetry", "--poem", "big.txt")
	if code, body := get(t, url+"/readyz"); code != 200 {
		t.Fatalf("/readyz while serving: %d %q", code, body)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := make([]byte, 38)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGTERM)
	p.WaitFor(t, "received SIGTERM, shutting down", 10*time.Second)
	if code, _ := get(t, url+"/readyz"); code != 503 {
		t.Errorf("/readyz during the drain: %d, want 503", code)
	}
	if code, _ := get(t, url+"/healthz"); code != 200 {
		t.Errorf("/healthz during the drain: %d, want 200", code)
	}
	// The drain still serves the client, to the last byte.
	rest, err := io.ReadAll(c)
	if err != nil || len(first)+len(rest) != len(poem) {
		t.Fatalf("received %d of %d bytes during the drain: %v", len(first)+len(rest), len(poem), err)
	}
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A lifecycle loop that stops answering turns /healthz to 503 and stops
// the watchdog pings (WATCHDOG_USEC 200ms: a ping every 100ms), so
// systemd restarts the service.
func TestHealthAndWatchdogFollowTheLoop(t *testing.T) {
	sock, msgs := notifySocket(t)
	env := []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000", "TWISTD_TESTHOOK_STALL=1"}
	p, _, url := startObserved(t, t.TempDir(), env, nil, "echo")
	if code, body := get(t, url+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	pings := func(d time.Duration) int {
		n := 0
		end := time.After(d)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, "WATCHDOG=1") {
					n++
				}
			case <-end:
				return n
			}
		}
	}
	if n := pings(time.Second); n < 3 {
		t.Fatalf("%d watchdog pings in 1s while healthy; want about 10", n)
	}
	p.Signal(t, syscall.SIGUSR1) // the test hook: the loop blocks for good
	p.WaitFor(t, "not pinging the systemd watchdog", 10*time.Second)
	if code, _ := get(t, url+"/healthz"); code != 503 {
		t.Errorf("/healthz with the loop stuck: %d, want 503", code)
	}
	pings(200 * time.Millisecond) // one may have been on its way
	if n := pings(time.Second); n != 0 {
		t.Errorf("%d watchdog pings in 1s with the loop stuck; want 0", n)
	}
	p.Signal(t, syscall.SIGKILL)
	p.Wait(t, 10*time.Second)
}

// --metrics is refused up front when it is not an endpoint.
func TestMetricsFlagChecked(t *testing.T) {
	code, _, stderr := testutil.Run(t, t.TempDir(), 10*time.Second, "-n", "--metrics", "tcp:nope", "echo")
	if code != 2 || !strings.Contains(stderr, `invalid value "tcp:nope" for --metrics`) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// --log-format json: every line from start-up to "shut down" is one JSON
// object with time, level, system and msg; a connection's figures are
// fields. --log-level warn drops the line per connection.
func TestJSONLogAndLevel(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	for _, level := range []string{"info", "warn"} {
		port := testutil.FreePort(t)
		p := testutil.Start(t, dir, "-n", "--log-format", "json", "--log-level", level, "fastpoetry", "--port", fmt.Sprint(port), "--iface", "127.0.0.1", "--poem", "poem.txt")
		if level == "info" {
			p.WaitFor(t, `"msg":"started"`, 10*time.Second)
		} else {
			waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
		}
		if got := fetch(t, fmt.Sprintf("127.0.0.1:%d", port)); got != testPoem {
			t.Fatalf("served %q", got)
		}
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
		out := p.Stdout.String()
		var lines []string
		if out != "" {
			lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		}
		var closed map[string]any
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %d is not JSON: %q: %v", i+1, l, err)
			}
			for _, k := range []string{"time", "level", "system", "msg"} {
				if _, ok := m[k].(string); !ok {
					t.Fatalf("line %d lacks %s: %q", i+1, k, l)
				}
			}
			if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", m["time"].(string)); err != nil {
				t.Errorf("line %d: time %v: %v", i+1, m["time"], err)
			}
			if m["msg"] == "connection closed" {
				closed = m
			}
		}
		switch {
		case level == "info" && (len(lines) == 0 || !strings.Contains(lines[len(lines)-1], `"msg":"shut down"`)):
			t.Errorf("log does not run from start-up to shut down:\n%s", out)
		case level == "info" && (closed == nil || closed["sent"] != float64(len(testPoem))):
			t.Errorf("no connection line with sent=%d as a field:\n%s", len(testPoem), out)
		case level == "warn" && closed != nil:
			t.Errorf("--log-level warn kept the line per connection:\n%s", out)
		}
	}
}

// waitListening waits until addr accepts a connection (bounded).
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
