package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// sample returns the value of the series written exactly as series (name
// and labels) in a text exposition, and whether it is there.
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}

// waitSample polls /metrics (bounded) until series has the value want,
// and returns the last exposition.
func waitSample(t *testing.T, metricsURL, series string, want float64) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body = get(t, metricsURL+"/metrics")
		if v, ok := sample(body, series); ok && v == want {
			return body
		}
		if time.Now().After(deadline) {
			v, ok := sample(body, series)
			t.Fatalf("%s: %v (present %v), want %v; exposition:\n%s", series, v, ok, want, body)
		}
	}
}

// echoClients makes n connections to addr, each sending size bytes and
// reading the echo back in full before closing.
func echoClients(t *testing.T, addr string, n, size int) {
	t.Helper()
	msg := bytes.Repeat([]byte("x"), size)
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, size)
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatalf("connection %d: echo: %v", i, err)
		}
		c.Close()
	}
}

// After 20 echo connections that each send 1,000 bytes, the exposition
// counts 20 accepted, 20,000 bytes each way and 20 durations, with none
// open; promtool's linter accepts it.
func TestConnectionMetrics(t *testing.T) {
	p, addr, metricsURL := startObserved(t, t.TempDir(), nil, nil, "echo")
	echoClients(t, addr, 20, 1000)
	body := waitSample(t, metricsURL, `twistd_connection_duration_seconds_count{service="echo"}`, 20)
	for series, want := range map[string]float64{
		`twistd_connections_accepted_total{service="echo"}`:                     20,
		`twistd_connections_open{service="echo"}`:                               0,
		`twistd_connections_waiting{service="echo"}`:                            0,
		`twistd_bytes_received_total{service="echo"}`:                           20000,
		`twistd_bytes_sent_total{service="echo"}`:                               20000,
		`twistd_connections_rejected_total{reason="queue_full",service="echo"}`: 0,
	} {
		if v, ok := sample(body, series); !ok || v != want {
			t.Errorf("%s: %v (present %v), want %v", series, v, ok, want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): the exposition was not linted")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	p.Signal(t, syscall.SIGTERM)
	p.Wait(t, 10*time.Second)
}

// A connection held open shows in twistd_connections_open while it lasts,
// and a client parked by --max-connections in twistd_connections_waiting.
func TestConnectionMetricsWhileOpen(t *testing.T) {
	_, addr, metricsURL := startObserved(t, t.TempDir(), nil, []string{"--max-connections", "1"}, "echo")
	var held []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitSample(t, metricsURL, `twistd_connections_open{service="echo"}`, 1)
	waitSample(t, metricsURL, `twistd_connections_waiting{service="echo"}`, 1)
	held[0].Close()
	waitSample(t, metricsURL, `twistd_connections_waiting{service="echo"}`, 0)
	held[1].Close()
	waitSample(t, metricsURL, `twistd_connections_open{service="echo"}`, 0)
}

// promQuery asks Prometheus's HTTP API for an instant query and returns
// the value of its only sample ("" when there is none yet).
func promQuery(t *testing.T, api, query string) string {
	t.Helper()
	code, body := get(t, api+"/api/v1/query?query="+url.QueryEscape(query))
	if code != 200 {
		return ""
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}

// A real Prometheus server scrapes twistd every second: its API reports
// the target up and the accepted-connections counter.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	_, addr, metricsURL := startObserved(t, t.TempDir(), nil, nil, "echo")
	echoClients(t, addr, 3, 100)
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: twistd
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(metricsURL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	testutil.StartCmd(t, exec.Command(bin,
		"--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", listen,
	), dir)
	api := "http://" + listen
	want := map[string]string{
		`up{job="twistd"}`: "1",
		`twistd_connections_accepted_total{job="twistd",service="echo"}`: "3",
	}
	got := map[string]string{}
	for deadline := time.Now().Add(30 * time.Second); len(got) < len(want); time.Sleep(200 * time.Millisecond) {
		for q, w := range want {
			if v := promQuery(t, api, q); v == w {
				got[q] = v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s Prometheus answered %v, want %v", got, want)
		}
	}
}
