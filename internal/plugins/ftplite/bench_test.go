package ftplite

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// BenchmarkFTP compares ftp-lite with vsftpd, both run as processes on
// loopback and driven by curl, one run of each per iteration in alternating
// order: RETR of a 1 GiB file, STOR of 256 MiB, LIST of 10,000 files. It
// reports the medians and ftp-lite's ratio to vsftpd (above 1 is faster;
// for LIST it is vsftpd's time over ours). `make bench-ftp` runs it; it
// needs vsftpd and curl, and FTP_BENCH=1 so the generic `go test -bench .`
// does not move gigabytes.
func BenchmarkFTP(b *testing.B) {
	if os.Getenv("FTP_BENCH") == "" {
		b.Skip("set FTP_BENCH=1 (make bench-ftp) to run the vsftpd comparison")
	}
	for _, tool := range []string{"vsftpd", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed (Debian package %s)", tool, tool)
		}
	}
	env := newBenchEnv(b)
	b.Run("RETR-1GiB", func(b *testing.B) {
		env.compare(b, "MB/s", func(port int, _ int) float64 {
			return env.curlMetric(b, "speed_download", "-o", "/dev/null", env.url(port, "big.bin")) / 1e6
		})
	})
	b.Run("STOR-256MiB", func(b *testing.B) {
		env.compare(b, "MB/s", func(port int, i int) float64 {
			name := fmt.Sprintf("up/u%d.bin", i)
			v := env.curlMetric(b, "speed_upload", "-T", env.upload, env.url(port, name))
			for _, r := range []string{env.liteRoot, env.vsRoot} {
				os.Remove(filepath.Join(r, name))
			}
			return v / 1e6
		})
	})
	b.Run("LIST-10000", func(b *testing.B) {
		env.compare(b, "ms", func(port int, _ int) float64 {
			return env.curlMetric(b, "time_total", "-o", "/dev/null", env.url(port, "many/")) * 1000
		})
	})
}

type benchEnv struct {
	dir, liteRoot, vsRoot, upload string
	litePort, vsPort              int
}

// newBenchEnv builds both trees (hard links, so the bytes served are the
// same file), starts ftp-lite and vsftpd, and removes it all at the end.
func newBenchEnv(b *testing.B) *benchEnv {
	dir, err := os.MkdirTemp("", "ftp-bench-")
	must(b, err)
	b.Cleanup(func() { os.RemoveAll(dir) })
	e := &benchEnv{dir: dir, liteRoot: filepath.Join(dir, "lite"), vsRoot: filepath.Join(dir, "vs"), upload: filepath.Join(dir, "upload.bin")}
	block := make([]byte, 1<<20)
	rand.Read(block)
	writeBig := func(name string, n int) {
		f, err := os.Create(name)
		must(b, err)
		for range n {
			_, err = f.Write(block)
			must(b, err)
		}
		must(b, f.Close())
	}
	writeBig(e.upload, 256)
	for _, r := range []string{e.liteRoot, e.vsRoot} {
		must(b, os.MkdirAll(filepath.Join(r, "many"), 0o755))
		must(b, os.MkdirAll(filepath.Join(r, "up"), 0o777))
		must(b, os.Chmod(filepath.Join(r, "up"), 0o777))
	}
	writeBig(filepath.Join(e.liteRoot, "big.bin"), 1024)
	must(b, os.Link(filepath.Join(e.liteRoot, "big.bin"), filepath.Join(e.vsRoot, "big.bin")))
	for i := range 10000 {
		name := fmt.Sprintf("file-%05d.txt", i)
		must(b, os.WriteFile(filepath.Join(e.liteRoot, "many", name), []byte(name), 0o644))
		must(b, os.Link(filepath.Join(e.liteRoot, "many", name), filepath.Join(e.vsRoot, "many", name)))
	}
	for _, d := range []string{dir, e.liteRoot, e.vsRoot} {
		must(b, os.Chmod(d, 0o755))
	}

	p := testutil.Start(b, dir, "-n", "--logfile", filepath.Join(dir, "ftp-lite.log"), "ftp-lite",
		"--port", "tcp:0:interface=127.0.0.1", "--root", e.liteRoot, "--anonymous-write")
	waitFile(b, filepath.Join(dir, "ftp-lite.log"), "listening on ")
	logText, _ := os.ReadFile(filepath.Join(dir, "ftp-lite.log"))
	s := string(logText)
	s = s[strings.Index(s, "listening on ")+len("listening on "):]
	_, port, _ := net.SplitHostPort(strings.Fields(s)[0])
	e.litePort, _ = strconv.Atoi(port)
	_ = p

	e.vsPort = testutil.FreePort(b)
	conf := filepath.Join(dir, "vsftpd.conf")
	must(b, os.WriteFile(conf, []byte(fmt.Sprintf(`listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=%d
background=NO
anonymous_enable=YES
anon_root=%s
no_anon_password=YES
write_enable=YES
anon_upload_enable=YES
anon_umask=022
local_enable=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
max_clients=50
`, e.vsPort, e.vsRoot)), 0o644))
	testutil.StartCmd(b, exec.Command("vsftpd", conf), dir)
	waitPort(b, e.vsPort)
	return e
}

func waitFile(b *testing.B, name, want string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if t, _ := os.ReadFile(name); strings.Contains(string(t), want) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %q in %s", want, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitPort(b *testing.B, port int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("vsftpd does not answer on %d: %v", port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *benchEnv) url(port int, name string) string {
	return "ftp://127.0.0.1:" + strconv.Itoa(port) + "/" + name
}

// curlMetric runs one curl and returns the -w variable asked for.
func (e *benchEnv) curlMetric(b *testing.B, variable string, args ...string) float64 {
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "120", "-w", "%{" + variable + "}"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("curl %v: %v %s", args, err, out)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	must(b, err)
	return v
}

// compare runs op against both servers b.N times, alternating which goes
// first, and reports both medians and the ratio.
func (e *benchEnv) compare(b *testing.B, unit string, op func(port, i int) float64) {
	var lite, vs []float64
	for i := range b.N {
		if i%2 == 0 {
			lite = append(lite, op(e.litePort, i))
			vs = append(vs, op(e.vsPort, i))
		} else {
			vs = append(vs, op(e.vsPort, i))
			lite = append(lite, op(e.litePort, i))
		}
	}
	ml, mv := median(lite), median(vs)
	b.ReportMetric(ml, "ftplite-"+unit)
	b.ReportMetric(mv, "vsftpd-"+unit)
	if unit == "ms" {
		b.ReportMetric(mv/ml, "ratio")
	} else {
		b.ReportMetric(ml/mv, "ratio")
	}
	b.Logf("%s ftp-lite %v, vsftpd %v", unit, lite, vs)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
