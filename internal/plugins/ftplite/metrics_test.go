package ftplite

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/testutil"
)

// The ftp-lite series count what real clients do: curl logs in (with a
// password, anonymously, with a wrong one), downloads and uploads; raw
// sessions cut an upload by a reset (failed) and by ABOR (aborted).
func TestFTPMetrics(t *testing.T) {
	curlBin := needTool(t, "curl")
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, func(c *Config) { c.Metrics = plugins.NewMetricSet(reg).For("ftp-lite") })
	base := "ftp://127.0.0.1:" + strconv.Itoa(ts.port)
	user := "ftp://" + testUser + ":" + strings.ReplaceAll(testPassword, " ", "%20") + "@127.0.0.1:" + strconv.Itoa(ts.port)
	dir := t.TempDir()
	local := filepath.Join(dir, "local.bin")
	must(t, os.WriteFile(local, bytes.Repeat([]byte("u"), 1000), 0o644))
	text, err := os.ReadFile(filepath.Join(ts.root, "text.txt"))
	must(t, err)

	curl := func(want int, args ...string) {
		t.Helper()
		if code, out := run(t, dir, curlBin, append([]string{"-sS", "--max-time", "30"}, args...)...); code != want {
			t.Fatalf("curl %v: exit %d, want %d\n%s", args, code, want, out)
		}
	}
	curl(0, "-o", filepath.Join(dir, "a"), base+"/text.txt")     // anonymous download
	curl(0, "-T", local, user+"/up/local.bin")                   // upload
	curl(0, "-o", filepath.Join(dir, "b"), user+"/up/local.bin") // download
	curl(67, "ftp://"+testUser+":wrong@127.0.0.1:"+strconv.Itoa(ts.port)+"/")
	got := testutil.Samples(t, reg)
	for series, want := range map[string]float64{
		`twistd_ftp_logins_total{result="anonymous",service="ftp-lite"}`:                        1,
		`twistd_ftp_logins_total{result="success",service="ftp-lite"}`:                          2,
		`twistd_ftp_logins_total{result="failure",service="ftp-lite"}`:                          1,
		`twistd_ftp_transfers_total{direction="download",result="complete",service="ftp-lite"}`: 2,
		`twistd_ftp_transfers_total{direction="upload",result="complete",service="ftp-lite"}`:   1,
		`twistd_ftp_transfer_bytes_total{direction="download",service="ftp-lite"}`:              float64(len(text) + 1000),
		`twistd_ftp_transfer_bytes_total{direction="upload",service="ftp-lite"}`:                1000,
		`twistd_connections_accepted_total{service="ftp-lite"}`:                                 4,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s: %v (present %v), want %v", series, v, ok, want)
		}
	}

	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")
	for _, how := range []string{"reset", "abort"} {
		d := c.epsv()
		c.expect(150, "STOR keep.txt")
		c.cutUpload(d, how)
	}
	waitOpen := func(want float64) map[string]float64 {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := testutil.Samples(t, reg)
			if got[`twistd_ftp_sessions_open{service="ftp-lite"}`] == want {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("sessions open: %v, want %v", got[`twistd_ftp_sessions_open{service="ftp-lite"}`], want)
			}
		}
	}
	got = waitOpen(1)
	for series, want := range map[string]float64{
		`twistd_ftp_transfers_total{direction="upload",result="failed",service="ftp-lite"}`:  1,
		`twistd_ftp_transfers_total{direction="upload",result="aborted",service="ftp-lite"}`: 1,
	} {
		if v := got[series]; v != want {
			t.Errorf("%s: %v, want %v", series, v, want)
		}
	}
	c.expect(221, "QUIT")
	waitOpen(0)
}
