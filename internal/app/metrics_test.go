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

// repoFile reads a file of the repository by its path from the top.
func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../..", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// families returns the twistd_ metric families an exposition declares.
func families(body string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "twistd_") {
			out[f[2]] = true
		}
	}
	return out
}

// The names are a public contract: an application file running every
// plugin exposes exactly the twistd_ families the README's table and the
// man page name, each service's labelled with its name in the file. Its
// [runner] max-connections reaches the services through their
// environment: a second echo client waits.
func TestMetricNamesDocumented(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	mport := testutil.FreePort(t)
	var echoAddr string
	app := fmt.Sprintf(`name = "all"
[runner]
metrics = "tcp:%d:interface=127.0.0.1"
max-connections = 1
`, mport)
	for _, s := range []struct{ plugin, name, extra string }{
		{"fastpoetry", "poetry", `poem = "poem.txt"`}, {"echo", "echo", ""}, {"chat", "talk", ""}, {"ftp-lite", "files", `root = "root"`},
	} {
		port := testutil.FreePort(t)
		if s.plugin == "echo" {
			echoAddr = fmt.Sprintf("127.0.0.1:%d", port)
		}
		app += fmt.Sprintf("[[service]]\nplugin = %q\nname = %q\n[service.options]\nport = %d\niface = \"127.0.0.1\"\n%s\n", s.plugin, s.name, port, s.extra)
	}
	if err := os.WriteFile(filepath.Join(dir, "all.toml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, dir, "-n", "-y", "all.toml")
	p.WaitFor(t, "] started\n", 10*time.Second)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d", mport)
	for range 2 {
		c, err := net.DialTimeout("tcp", echoAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	body := waitSample(t, metricsURL, `twistd_connections_waiting{service="echo"}`, 1)
	for _, series := range []string{
		`twistd_connections_open{service="poetry"}`, `twistd_connections_open{service="echo"}`,
		`twistd_connections_open{service="talk"}`, `twistd_connections_open{service="files"}`,
		`twistd_chat_users_online{service="talk"}`, `twistd_ftp_sessions_open{service="files"}`,
	} {
		if _, ok := sample(body, series); !ok {
			t.Errorf("no %s in the exposition", series)
		}
	}
	exposed := families(body)
	readme, man := repoFile(t, "README.md"), repoFile(t, "man/twistd.1")
	for name := range exposed {
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("%s is exposed but not in the README's table", name)
		}
		if !strings.Contains(string(man), `\fB`+name+`\fP`) {
			t.Errorf("%s is exposed but not in man/twistd.1 (make man)", name)
		}
	}
	for _, l := range strings.Split(string(readme), "\n") {
		if name, ok := strings.CutPrefix(l, "| `twistd_"); ok {
			name = "twistd_" + name[:strings.Index(name, "`")]
			if strings.Contains(l, "with `--redis`") {
				continue // chat's TestRedisMetrics sees those, on a real Redis
			}
			if !exposed[name] {
				t.Errorf("the README's table names %s, which the binary does not expose", name)
			}
		}
	}
	p.Signal(t, syscall.SIGTERM)
	p.Wait(t, 10*time.Second)
}

// The shipped Prometheus configuration passes promtool, and the Grafana
// dashboard is JSON whose every query names a metric the README documents
// (or one of client_golang's Go and process collectors).
func TestMetricsConfigs(t *testing.T) {
	readme, raw := repoFile(t, "README.md"), repoFile(t, "configs/grafana-dashboard.json")
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("configs/grafana-dashboard.json: %v", err)
	}
	if len(dash.Panels) < 10 {
		t.Errorf("%d panels, want the 10 of issue 16", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, w := range strings.FieldsFunc(tg.Expr, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') }) {
				switch {
				case strings.HasPrefix(w, "twistd_") && !strings.Contains(string(readme), "| `"+w+"` |"):
					t.Errorf("panel %q queries %s, which the README does not document", p.Title, w)
				case w == "go_goroutines" || w == "process_resident_memory_bytes":
				case strings.HasPrefix(w, "go_") || strings.HasPrefix(w, "process_"):
					t.Errorf("panel %q queries %s: check it exists", p.Title, w)
				}
			}
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): configs/prometheus.yml not checked")
	}
	if out, err := exec.Command(promtool, "check", "config", "../../configs/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
